"""The only package that touches private TRL/transformers/peft/accelerate names. Each module says the versions it was
written against, and tests/test_compat*.py fail loudly when those internals change."""
