"""The plugin contract: the hook specs, the records a plugin registers (Method, Reward, ...), the registry that
discovers plugins through the `trl_ext` entry-point group, and the core's own plugin (plain TRL methods, datasets)."""
