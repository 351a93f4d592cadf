"""The controller side on Ray: sweeps of experiments, Tune searches and board farms (never imported by ``devices``).

- :mod:`testbed.distributed.grid` — the grid of a sweep (``--vary KEY=V1,V2``, ``--seeds N``), pure, no Ray;
- :mod:`testbed.distributed.cluster` — the one place that starts or joins Ray (:func:`ray_session`);
- :mod:`testbed.distributed.sweep` — every cell one run store, executed as Ray tasks, retried, resumable;
- :mod:`testbed.distributed.farm` — device agents as Ray actors (one lease and client each, labelled by the
  board's profile), so hil runs and profiling cells go to a free board of the right kind.
"""
