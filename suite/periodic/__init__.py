"""Continual sequential recommendation: a recommender retrained period by period (``recbole-periods``).

The ``continual-recsys`` family: the scenario cuts a RecBole dataset into time periods
(``scenarios.recsys.periods``), a method decides what each period trains on (``finetune``,
``joint``, ``replay``, ``ader``: one file each), and ``runner`` trains any of the suite's
sequential models through its RecBole trainer, filling the period x period matrices of
NDCG@k and HR@k.
"""
