"""Errors the launcher turns into one readable line and an exit code."""

from __future__ import annotations


class SuiteError(Exception):
    """A problem with the user's input (spec, data, arguments): exit code 2, no traceback."""

    exit_code = 2


class SpecError(SuiteError):
    """A run spec that cannot be read or validated."""


class DataError(SuiteError):
    """A dataset or corpus that is missing, malformed, or unusable for the requested protocol."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (``timeout``, Slurm, ``docker stop``), raised where Ctrl-C would be: open runs end KILLED, exit 143."""

    def __init__(self, message: str = "terminated (SIGTERM)"):
        super().__init__(message)
