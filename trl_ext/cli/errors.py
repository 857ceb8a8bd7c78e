"""What every command reports the same way: a usage error's exit code and the error a command raises for bad
input (printed as `trl-ext: error: ...`, no traceback)."""

EXIT_USAGE = 2


class CLIError(Exception):
    pass
