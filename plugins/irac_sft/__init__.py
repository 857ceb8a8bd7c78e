"""irac_sft (placeholder while being written)."""
