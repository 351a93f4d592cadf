"""RT3's search of pattern sets per DVFS frequency level (issue 7): space, reward, RL controller, baselines.

- :mod:`~testbed.search.space` — decisions (level assignment + pattern per layer and sparsity), memo keys;
- :mod:`~testbed.search.latency` — RT3's op-count latency PREDICTION or a profile table;
- :mod:`~testbed.search.reward` — RT3's reward terms with the ideal-bucket battery term;
- :mod:`~testbed.search.evaluator` — candidate → pattern sets → accuracy, latency, reward (memoised);
- :mod:`~testbed.search.controller`, :mod:`~testbed.search.reinforce` — LSTM, factorised and ordinal policies,
  REINFORCE;
- :mod:`~testbed.search.baselines` — random search and Optuna TPE; :mod:`~testbed.search.structured` — every
  level triple, then greedy per layer (the baseline a learned searcher must beat);
- :mod:`~testbed.search.layerspace` — per-layer sparsity per frequency level from latency and accuracy tables
  (the space where decisions interact), :mod:`~testbed.search.signal` — its accuracy table and how far it
  can be trusted (rank correlation with fine-tuned accuracy);
- :mod:`~testbed.search.agent_latency` — latency and power of each new pattern set measured through an agent;
- :mod:`~testbed.search.memory` — the optional resident-memory term that couples the levels;
- :mod:`~testbed.search.layer_profile`, :mod:`~testbed.search.layer_problem` — per-layer latency tables measured
  through an agent (cached, with provenance) and the layer search on a checkpoint (``--space layer``);
- :mod:`~testbed.search.runner` — budget, search log, checkpoints and resume, progress;
- :mod:`~testbed.search.problem`, :mod:`~testbed.search.artifact`, :mod:`~testbed.search.compare` (and its
  figure and table, :mod:`~testbed.search.compare_report`); :mod:`~testbed.search.optimum` — the layer
  space's exact optimum, :mod:`~testbed.search.diagnose` — why a searcher wins or loses there.
"""
