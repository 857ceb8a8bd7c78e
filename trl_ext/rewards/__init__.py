"""Rewards for GRPO-based methods and the sandbox that runs model-generated code."""
