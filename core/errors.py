"""User-facing errors.

Anything a person can cause by typing a wrong name, path or number raises one of these, with a message that names
the problem and how to fix it. The CLI prints the message without a traceback; the app shows it on the run.
"""


class UserError(Exception):
    """A mistake in the input (a setting, a path, a data file), not a bug in the program."""


class DataError(UserError):
    """A data set cannot be found, read or used as asked."""


class ConfigError(UserError):
    """A setting is out of range or inconsistent with the data."""


class RunError(UserError):
    """A run directory is missing, incomplete or cannot be resumed."""


class DiskError(RunError):
    """A run's folder could not be written while the run trained (the disk filled, became read-only or reached its
    quota): the run stopped and keeps its last intact checkpoint. Not a mistake in the input: the CLI exits with 1."""


class TrainingDiverged(Exception):
    """A loss became NaN or infinite; the run stops and keeps its last good checkpoint."""
