"""Load a run store (one SQLite file per run) into pandas for analysis.

Works on runs of either fidelity level (``sim`` or ``hil``): both write the same tables. Opening is
read-only; a missing or foreign file raises :class:`~devices.errors.BadInputError`.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from devices.errors import BadInputError

RUN_FILE = "run.sqlite"


def run_path(path: str | Path) -> Path:
    """The SQLite file of a run given as the file or its directory."""
    p = Path(path)
    if p.is_dir():
        p = p / RUN_FILE
    if not p.is_file():
        raise BadInputError(f"{path}: not a run (no {RUN_FILE}); pass a directory written by `testbed run`")
    return p


@dataclass
class RunData:
    """A run's manifest, per-strategy results and lazily loaded tables."""

    path: Path
    manifest: dict[str, Any]
    results: dict[str, dict[str, Any]]
    _conn: sqlite3.Connection
    _cache: dict[str, pd.DataFrame] = field(default_factory=dict)

    @property
    def name(self) -> str:
        cfg = self.manifest.get("config") or {}
        return str(cfg.get("name") or self.path.parent.name)

    @property
    def mode(self) -> str:
        cfg = self.manifest.get("config") or {}
        return str(cfg.get("mode") or self.manifest.get("fidelity") or "?")

    @property
    def battery_model(self) -> str:
        cfg = self.manifest.get("config") or {}
        return str((cfg.get("battery") or {}).get("model") or "?")

    @property
    def deadline_ms(self) -> float | None:
        cfg = self.manifest.get("config") or {}
        d = (cfg.get("requests") or {}).get("deadline_ms")
        return float(d) if d is not None else None

    def table(self, name: str, strategy: str | None = None) -> pd.DataFrame:
        """A table as a DataFrame (all strategies, or one)."""
        if name not in self._cache:
            try:
                self._cache[name] = pd.read_sql_query(f"SELECT * FROM {name} ORDER BY rowid", self._conn)
            except (pd.errors.DatabaseError, sqlite3.Error) as exc:
                raise BadInputError(f"{self.path}: cannot read table {name!r}: {exc}") from None
        df = self._cache[name]
        if strategy is not None and "strategy" in df.columns:
            return df[df["strategy"] == strategy].reset_index(drop=True)
        return df

    def close(self) -> None:
        self._conn.close()


def load_run(path: str | Path) -> RunData:
    """Open a run read-only; :class:`BadInputError` if it is not a complete run store."""
    p = run_path(path)
    try:
        conn = sqlite3.connect(f"file:{p}?mode=ro", uri=True)
        manifest = {k: json.loads(v) for k, v in conn.execute("SELECT key, value FROM manifest")}
        results = {s: json.loads(d) for s, d in conn.execute("SELECT strategy, data FROM results")}
    except sqlite3.DatabaseError as exc:
        raise BadInputError(f"{p}: not a run store: {exc}") from None
    except json.JSONDecodeError as exc:
        raise BadInputError(f"{p}: corrupt manifest or results: {exc.msg}") from None
    if not results:
        raise BadInputError(f"{p}: the run has no finished strategy yet (resume it with `testbed run --resume`)")
    return RunData(p, manifest, results, conn)
