"""Export a run store's tables to Parquet or CSV, and list the runs below a directory.

Export needs pandas (and pyarrow for Parquet): the ``analysis`` extra. Each table becomes one file
``<table>.parquet`` / ``<table>.csv``; JSON-valued columns (manifest values, results) stay JSON text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from devices.errors import BadInputError
from testbed.runstore.store import RUN_FILE, RunStore


def export_run(run: str | Path, out_dir: str | Path, fmt: str) -> list[Path]:
    """Write every table of ``run`` to ``out_dir`` as ``fmt`` ("parquet" or "csv"); returns the files."""
    if fmt not in ("parquet", "csv"):
        raise BadInputError(f"unknown export format {fmt!r}; use parquet or csv")
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - depends on the install
        raise BadInputError("export needs pandas: pip install 'rt3-testbed[analysis]'") from None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    store = RunStore.open(run)
    try:
        for table in store.table_names():
            df = pd.read_sql_query(f"SELECT * FROM {table} ORDER BY rowid", store.conn)
            path = out / f"{table}.{fmt}"
            if fmt == "parquet":
                df.to_parquet(path, index=False)
            else:
                df.to_csv(path, index=False)
            written.append(path)
    finally:
        store.conn.close()
    return written


def list_runs(directory: str | Path) -> list[dict[str, Any]]:
    """Summaries of the runs found below ``directory`` (its own run file included), newest first."""
    d = Path(directory)
    if not d.is_dir():
        raise BadInputError(f"{d}: not a directory")
    found: list[dict[str, Any]] = []
    for path in sorted(d.rglob(RUN_FILE)):
        try:
            store = RunStore.open(path)
        except BadInputError:
            continue
        try:
            m = store.manifest()
            config = m.get("config") or {}
            wanted = list(config.get("strategies", [])) if isinstance(config, dict) else []
            done = store.finished_units()
            found.append(
                {
                    "run": str(path.parent),
                    "uuid": m.get("run_uuid"),
                    "created": m.get("created_wall"),
                    "fidelity": m.get("fidelity"),
                    "name": config.get("name") if isinstance(config, dict) else None,
                    "strategies": wanted,
                    "finished": sorted(done),
                    "complete": bool(wanted) and all(s in done for s in wanted),
                }
            )
        finally:
            store.conn.close()
    found.sort(key=lambda r: str(r["created"]), reverse=True)
    return found
