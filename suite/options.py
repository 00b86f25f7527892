"""The base of every entry's options (a spec section): pydantic, strict, cheap to import.

Kept in its own module so that the public API (``suite.api``) and the scenario contracts
(``suite.contracts``) both build on it; plugins import it from ``suite.api``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Options(BaseModel):
    """Base for entry options: unknown keys are errors, values are validated on assignment, floats are finite.

    No option means anything by inf or NaN (``train.lr: .inf`` would only surface later as a NaN
    loss), so they are refused at validation; RecBole's ``[5,inf)`` intervals are strings.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class NoOptions(Options):
    """For entries that take no options besides their name."""
