"""Built-in trl-ext plugins, one package per paper; importable as `trl_ext_plugins.<slug>`."""
