"""Continual SLU on Avalanche: a seq2seq template, replay and distillation plugins, COCONUT.

Each piece is an ordinary Avalanche object that works without the launcher:

- ``strategy.Seq2SeqTemplate``: ``SupervisedTemplate`` for ``(x, y, x_lens, tokens, t)`` batches;
- ``replay.Seq2SeqReplayPlugin`` + ``replay.make_storage_policy`` (reservoir, class-balanced, herding);
- ``coconut.CoconutPlugin`` (NSPT + MM), ``akd.AKDPlugin``, ``skd.SKDPlugin``,
  ``ewc.Seq2SeqEWCPlugin``, ``lwf.Seq2SeqLwFPlugin``, ``joint.JointDataPlugin``;
- ``losses``: one file per loss (``nspt``, ``mm``, ``feature_kd``, ``sequence_kd``, ``token_kd``);
- ``metrics``: accuracy-matrix metrics, WER, and the ``DecodingMetrics`` evaluation metric;
- ``mlflow_logger.MLflowContinualLogger``: Avalanche logger writing to the suite's Tracker;
- ``runner.run``: what the registry's method entries (``entries.py``) call.
"""
