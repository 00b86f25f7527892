"""The base of every entry's options (a spec section): pydantic, strict, cheap to import.

Kept in its own module so that the public API (``suite.api``) and the scenario contracts
(``suite.contracts``) both build on it; plugins import it from ``suite.api``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Options(BaseModel):
    """Base for entry options: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class NoOptions(Options):
    """For entries that take no options besides their name."""
