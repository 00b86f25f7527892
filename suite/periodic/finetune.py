"""rec-finetune: each period's model continues from the last one on the period's new data only (the lower bound)."""

from __future__ import annotations

from suite.api import NoOptions
from suite.periodic.entries import periodic_method
from suite.periodic.method import PeriodMethod

REC_FINETUNE = periodic_method("rec-finetune", NoOptions, PeriodMethod, "fine-tune on each period's new interactions only")
