"""duetfair.engine: running experiments.

* :mod:`~duetfair.engine.config`: typed experiment config (YAML, ``extends``, ``--set``, ``method``);
* :mod:`~duetfair.engine.trainer`: train / validate / select / checkpoint / resume, DDP-aware;
* :mod:`~duetfair.engine.evaluate`: per-case table, summary, audit and report of a run;
* :mod:`~duetfair.engine.predict`: masks for image files with the input's geometry;
* :mod:`~duetfair.engine.compare`: the papers' comparison table of evaluated runs;
* :mod:`~duetfair.engine.demo`: the train-compare demo and the multi-seed method benchmark.

Heavy modules are imported lazily by the CLI; import what you need from the submodules, e.g.
``from duetfair.engine.trainer import train``.
"""
