"""duetfair.experiments: studies built on the engine.

* :mod:`~duetfair.experiments.methods`: ``duetfair demo`` (train, evaluate and compare the fairness
  methods on the synthetic benchmark) and ``duetfair benchmark`` (the same over seeds, with
  intervals across seeds and paired differences to a baseline).
"""
