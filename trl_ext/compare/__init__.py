"""`trl-ext compare`: several papers' methods on one model, data and budget; one table, one plot, one CSV."""
