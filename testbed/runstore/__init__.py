"""The run store: one SQLite file per run, its manifest, export and the verification checker.

- :mod:`testbed.runstore.schema` — tables and required manifest keys;
- :mod:`testbed.runstore.store` — :class:`RunStore` (WAL, batched commits, checkpoints for resume);
- :mod:`testbed.runstore.manifest` — source hash, versions, run UUID;
- :mod:`testbed.runstore.results` — typed results (``StrategyResult``, ``SearchSummary``) and their JSON;
- :mod:`testbed.runstore.executor` — the one resumable run executor (open/resume, units, manifest, summary);
- :mod:`testbed.runstore.verify` — named checks (``testbed verify``);
- :mod:`testbed.runstore.export` — Parquet/CSV export (``testbed export``) and listing (``testbed runs list``).
"""

from testbed.runstore.store import RUN_FILE, RunStore, run_file

__all__ = ["RUN_FILE", "RunStore", "run_file"]
