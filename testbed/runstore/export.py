"""Export a run store's tables to Parquet or CSV, and list the runs below a directory.

Both read through :class:`~testbed.runstore.reader.RunReader`: they never write to a run store.
Export needs pandas (and pyarrow for Parquet): the ``analysis`` extra. Each table becomes one file
``<table>.parquet`` / ``<table>.csv``; JSON-valued columns (manifest values, results) stay JSON text.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from devices.errors import BadInputError
from testbed.runstore.reader import RunReader
from testbed.runstore.store import RUN_FILE


def export_run(run: str | Path, out_dir: str | Path, fmt: str) -> list[Path]:
    """Write every table of ``run`` to ``out_dir`` as ``fmt`` ("parquet" or "csv"); returns the files."""
    if fmt not in ("parquet", "csv"):
        raise BadInputError(f"unknown export format {fmt!r}; use parquet or csv")
    if importlib.util.find_spec("pandas") is None:  # pragma: no cover - depends on the install
        raise BadInputError("export needs pandas: pip install 'rt3-testbed[analysis]'")
    out = Path(out_dir)
    written: list[Path] = []
    with RunReader.open(run) as reader:  # before creating anything: a bad run leaves no output directory
        out.mkdir(parents=True, exist_ok=True)
        for table in reader.table_names():
            df = reader.frame(table)
            path = out / f"{table}.{fmt}"
            if fmt == "parquet":
                df.to_parquet(path, index=False)
            else:
                df.to_csv(path, index=False)
            written.append(path)
    return written


def list_runs(directory: str | Path) -> list[dict[str, Any]]:
    """Summaries of the runs found below ``directory`` (its own run file included), newest first."""
    d = Path(directory)
    if not d.is_dir():
        raise BadInputError(f"{d}: not a directory")
    found: list[dict[str, Any]] = []
    for path in sorted(d.rglob(RUN_FILE)):
        try:
            reader = RunReader.open(path)
        except BadInputError:
            continue
        with reader:
            m, config = reader.manifest, reader.config
            wanted = list(config.get("strategies", []))
            done = reader.finished_units()
            found.append(
                {
                    "run": str(path.parent),
                    "uuid": m.get("run_uuid"),
                    "created": m.get("created_wall"),
                    "fidelity": m.get("fidelity"),
                    "name": config.get("name"),
                    "strategies": wanted,
                    "finished": sorted(done),
                    "complete": bool(wanted) and all(s in done for s in wanted),
                }
            )
    found.sort(key=lambda r: str(r["created"]), reverse=True)
    return found
