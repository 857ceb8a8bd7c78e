"""What a run is measured with after (or while) it trains: exact match, completion NLL, KL drift."""

from trl_ext.evaluation.metrics import completion_nll, exact_match, kl_drift

__all__ = ["completion_nll", "exact_match", "kl_drift"]
