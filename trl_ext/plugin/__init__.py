"""The plugin contract: the hook specs, the records a plugin registers (Method, Reward, ...), the registry that
discovers plugins through the `trl_ext` entry-point group. The core's own plugin (plain TRL methods, built-in datasets)
is `trl_ext.core_plugin`, above every layer it registers from."""
