"""duetfair.engine: running experiments.

* :mod:`~duetfair.engine.config`: typed experiment config (YAML, ``extends``, ``--set``, ``method``);
* :mod:`~duetfair.engine.trainer`: train / validate / select / checkpoint / resume, DDP-aware;
* :mod:`~duetfair.engine.evaluate`: per-case table, summary, audit and report of a run;
* :mod:`~duetfair.engine.predict`: masks for image files with the input's geometry.

The engine holds training and evaluation only: comparison tables live in
:mod:`duetfair.audit.compare`, the demo and the method benchmark in :mod:`duetfair.experiments`.

Heavy modules are imported lazily by the CLI; import what you need from the submodules, e.g.
``from duetfair.engine.trainer import train``.
"""
