"""The one exception root for user errors.

The CLI prints the message of a ``PocketCoffeaError`` without a traceback (unless the log
level is DEBUG) and exits non-zero; anything else is a bug and keeps its traceback.
"""


class PocketCoffeaError(Exception):
    """An error caused by the user's input: a config, a YAML/JSON file, an option value."""


class ConfigError(PocketCoffeaError):
    """The analysis configuration (``Configurator``) is invalid."""


class DatasetError(PocketCoffeaError):
    """A dataset/fileset JSON is missing, malformed or filtered down to nothing."""


class RunOptionsError(PocketCoffeaError):
    """A run option is unknown or has the wrong type."""


class ExecutorError(PocketCoffeaError):
    """An unknown executor/site, or a custom executor module that cannot be used."""


class OutputError(PocketCoffeaError):
    """A ``.coffea`` output is missing, unreadable or lacks the expected keys."""


class RunInterrupted(PocketCoffeaError):
    """The run was stopped by a signal (Ctrl-C, SIGTERM); ``exit_code`` is 128 + the signal number."""

    def __init__(self, message: str, exit_code: int = 130):
        super().__init__(message)
        self.exit_code = exit_code
