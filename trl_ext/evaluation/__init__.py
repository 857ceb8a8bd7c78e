"""What a run is measured with after (or while) it trains: exact match, completion NLL, KL drift."""
