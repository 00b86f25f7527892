"""Continual SLU on Avalanche: a seq2seq template, one file per method, metrics, an MLflow logger.

Each piece is an ordinary Avalanche object that works without the launcher:

- ``strategy.Seq2SeqTemplate``: ``SupervisedTemplate`` for ``(x, y, x_lens, tokens, t)`` batches;
- one file per method, each with its options, its plugin factory ``make_plugins`` and its
  registry entry: ``finetune``, ``joint`` (``JointTrainingPlugin``), ``replay``
  (``Seq2SeqReplayPlugin``, reservoir / class-balanced / herding buffers), ``ewc``
  (``Seq2SeqEWCPlugin``), ``lwf`` (``Seq2SeqLwFPlugin``), ``akd`` (``AKDPlugin``), ``skd``
  (``SKDPlugin``), ``coconut`` (``CoconutPlugin`` with its ``CoconutHeads``); the regularizers
  ``si``, ``mas``, ``rwalk`` and the gradient projections ``agem``, ``gem`` (on
  ``episodic_memory.EpisodicMemory``); the rehearsal variants ``gdumb``, ``mir``, ``der``,
  ``er_ace``, ``gss_greedy``; ``combine``, several methods' plugins on one replay buffer;
- ``losses``: one file per loss (``nspt``, ``mm``, ``dcl``, ``feature_kd``, ``sequence_kd``, ``token_kd``);
- ``metrics``: accuracy-matrix functions, WER, the ``AccuracyMatrix`` evaluation metric and the
  ``EpochLosses`` training metric (loss terms, gradient norm, clipping, learning rate per epoch);
- ``mlflow_logger.MLflowContinualLogger``: Avalanche logger writing to the suite's Tracker;
- ``resume.RunCheckpoint``: saves the run's state after every epoch and experience, restores it;
- ``progress_bar.EpochProgressPlugin``: one terminal bar per epoch;
- ``entries``: the model entry and ``continual_method``, which turns a method file into a
  ``MethodEntry`` (``method_setup``: what a plugin factory receives); ``runner.run``: what every
  continual method entry calls.
"""
