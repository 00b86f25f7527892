"""``RecBoleTrainer``: RecBole's own ``Trainer`` for any sequential model, its training step untouched.

The suite changes only what RecBole 1.2.1 cannot do under torch >= 2.6 or without MLflow
(``checkpointing.py``): weights-only checkpoints with resume, per-epoch reporting, and
autograd anomaly detection off while fitting. SASRec through this trainer gives the same
metrics as plain RecBole's ``run_recbole`` for a seed.
"""

from __future__ import annotations

from recbole.trainer import Trainer

from suite.sequential.checkpointing import AnomalyDetectionOff, EpochReporting, WeightsOnlyCheckpoints


class RecBoleTrainer(AnomalyDetectionOff, EpochReporting, WeightsOnlyCheckpoints, Trainer):
    """RecBole's ``Trainer`` with suite-owned (weights-only) checkpoints, resume and epoch reporting."""
