"""One SQLite file per run: WAL journal, rows buffered in memory and committed in small batches.

A :class:`RunStore` buffers rows per table and commits them at most ``commit_interval_s`` (default
1 s) apart, together with the writer's checkpoint, in one transaction; a crash (even SIGKILL) loses at
most the rows of the last interval, and what survives is always consistent with the checkpoint, so a
run can resume from it. Values are SI units (see :mod:`testbed.runstore.schema`).

Failure modes: :class:`~devices.errors.BadInputError` when the file is not a run store or is missing
(when opened read-only); SQLite errors at write time propagate as
:class:`~devices.errors.TestbedError`.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from devices.errors import BadInputError, TestbedError
from testbed.runstore.results import UnitResult, result_from_dict
from testbed.runstore.schema import DDL, SCHEMA_VERSION, TABLES

RUN_FILE = "run.sqlite"


def run_file(path: str | Path) -> Path:
    """The SQLite file of a run given the run directory or the file itself."""
    p = Path(path)
    return p / RUN_FILE if p.is_dir() else p


class RunStore:
    """Writer and reader of one run file.

    ``RunStore.create(dir, manifest)`` starts a run; ``RunStore.open(path)`` reopens it (to resume
    or to read). ``add(table, row)`` buffers a row (a tuple in the column order of the schema);
    ``maybe_commit(checkpoint)`` commits when the interval has passed; ``commit()`` always commits.
    """

    def __init__(self, conn: sqlite3.Connection, path: Path, commit_interval_s: float = 1.0) -> None:
        self.conn = conn
        self.path = path
        self.commit_interval_s = commit_interval_s
        self._buffers: dict[str, list[Sequence[Any]]] = {name: [] for name in TABLES}
        self._inserts = {
            name: f"INSERT INTO {name} ({', '.join(c for c, _ in cols)}) VALUES ({', '.join('?' * len(cols))})"
            for name, cols in TABLES.items()
        }
        self._last_commit = time.monotonic()
        self._opened = self._last_commit
        self.commits = 0

    # -- opening -----------------------------------------------------------------------------------------

    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30.0)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    @classmethod
    def create(cls, directory: str | Path, manifest: dict[str, Any], commit_interval_s: float = 1.0) -> RunStore:
        """Create ``directory/run.sqlite`` with ``manifest``; refuses an existing run file."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        path = d / RUN_FILE
        if path.exists():
            raise BadInputError(f"{path} already exists; use --resume {d} or another --out directory")
        conn = cls._connect(path)
        conn.execute("BEGIN")
        for stmt in DDL:
            conn.execute(stmt)
        conn.executemany(
            "INSERT INTO manifest (key, value) VALUES (?, ?)",
            [(k, json.dumps(v)) for k, v in {"schema_version": SCHEMA_VERSION, **manifest}.items()],
        )
        conn.execute("COMMIT")
        return cls(conn, path, commit_interval_s)

    @classmethod
    def open(cls, path: str | Path, commit_interval_s: float = 1.0) -> RunStore:
        """Open an existing run (directory or file); :class:`BadInputError` if it is not a run store."""
        p = run_file(path)
        if not p.is_file():
            raise BadInputError(f"{path}: no run store here (expected {p})")
        try:
            conn = cls._connect(p)
        except sqlite3.DatabaseError as exc:
            raise BadInputError(f"{p}: not a run store ({exc})") from None
        try:
            names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise BadInputError(f"{p}: not a run store ({exc})") from None
        if "manifest" not in names:
            conn.close()
            raise BadInputError(f"{p}: not a run store (no manifest table)")
        return cls(conn, p, commit_interval_s)

    def close(self) -> None:
        """Commit what is buffered and close the file."""
        self.commit()
        self.conn.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing -----------------------------------------------------------------------------------------

    def add(self, table: str, row: Sequence[Any]) -> None:
        """Buffer one row of ``table`` (columns in schema order)."""
        self._buffers[table].append(row)

    def log(self, source: str, kind: str, data: Any, t_s: float | None = None) -> None:
        """Buffer one row of the generic ``log`` table (``data`` is stored as JSON; ``t_s`` defaults to
        seconds since the store was opened, monotonic)."""
        t = t_s if t_s is not None else time.monotonic() - self._opened
        self._buffers["log"].append((t, source, kind, json.dumps(data)))

    def buffer(self, table: str) -> list[Sequence[Any]]:
        """The live buffer of ``table`` (hot loops append to it directly)."""
        return self._buffers[table]

    def maybe_commit(self, checkpoint: Callable[[], tuple[str, float, dict[str, Any]]] | None = None) -> bool:
        """Commit if ``commit_interval_s`` has passed since the last commit; returns whether it did."""
        if time.monotonic() - self._last_commit < self.commit_interval_s:
            return False
        self.commit(checkpoint() if checkpoint is not None else None)
        return True

    def commit(self, checkpoint: tuple[str, float, dict[str, Any]] | None = None) -> None:
        """Write every buffered row, and ``(strategy, t_s, state)`` as that strategy's checkpoint, atomically."""
        try:
            self.conn.execute("BEGIN")
            for name, rows in self._buffers.items():
                if rows:
                    self.conn.executemany(self._inserts[name], rows)
                    rows.clear()
            if checkpoint is not None:
                strategy, t_s, state = checkpoint
                self.conn.execute(
                    "INSERT OR REPLACE INTO checkpoints (strategy, t_s, state) VALUES (?, ?, ?)",
                    (strategy, t_s, json.dumps(state)),
                )
            self.conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise TestbedError(f"{self.path}: could not write the run store: {exc}") from None
        self._last_commit = time.monotonic()
        self.commits += 1

    def set_manifest(self, key: str, value: Any) -> None:
        """Set one manifest entry (committed at once)."""
        self.conn.execute("INSERT OR REPLACE INTO manifest (key, value) VALUES (?, ?)", (key, json.dumps(value)))

    def begin_phase(self, name: str) -> None:
        """Record the wall and monotonic start time of a phase (committed at once)."""
        self.conn.execute(
            "INSERT INTO phases (name, wall_start_s, mono_start_s) VALUES (?, ?, ?)",
            (name, time.time(), time.monotonic()),
        )

    def end_phase(self, name: str) -> None:
        """Record the end time of the latest open phase called ``name``."""
        self.conn.execute(
            "UPDATE phases SET wall_end_s = ?, mono_end_s = ? WHERE rowid = "
            "(SELECT max(rowid) FROM phases WHERE name = ? AND wall_end_s IS NULL)",
            (time.time(), time.monotonic(), name),
        )

    def mark_interrupted(self) -> list[str]:
        """Rename phases that never ended (the process died) to ``<name> (interrupted)``; returns their names.

        Their end times stay unknown (NULL): the checker accepts an open phase only when it is marked so.
        """
        names = [r[0] for r in self.conn.execute("SELECT name FROM phases WHERE wall_end_s IS NULL")]
        self.conn.execute(
            "UPDATE phases SET name = name || ' (interrupted)' "
            "WHERE wall_end_s IS NULL AND name NOT LIKE '%(interrupted)'"
        )
        return names

    def set_result(self, unit: str, result: UnitResult) -> None:
        """Store a unit's (strategy's or search's) final result, after committing its remaining rows."""
        self.commit()
        self.conn.execute(
            "INSERT OR REPLACE INTO results (strategy, data) VALUES (?, ?)", (unit, json.dumps(result.to_dict()))
        )

    def discard_after(self, strategy: str, t_s: float) -> None:
        """Delete a strategy's rows later than ``t_s`` (used when resuming from a checkpoint)."""
        self.conn.execute("BEGIN")
        for name, cols in TABLES.items():
            if cols[0][0] == "strategy":
                self.conn.execute(f"DELETE FROM {name} WHERE strategy = ? AND t_s > ?", (strategy, t_s))
        self.conn.execute("COMMIT")

    def clear_strategy(self, strategy: str) -> None:
        """Delete every row of ``strategy`` (a restart from scratch)."""
        self.conn.execute("BEGIN")
        for name, cols in TABLES.items():
            if cols[0][0] == "strategy":
                self.conn.execute(f"DELETE FROM {name} WHERE strategy = ?", (strategy,))
        self.conn.execute("DELETE FROM checkpoints WHERE strategy = ?", (strategy,))
        self.conn.execute("COMMIT")

    # -- reading -----------------------------------------------------------------------------------------

    def manifest(self) -> dict[str, Any]:
        """The manifest as a dict of decoded JSON values."""
        return {k: json.loads(v) for k, v in self.conn.execute("SELECT key, value FROM manifest")}

    def finished_units(self) -> list[str]:
        """Names of the units (strategies, searches) with a stored result, in the order they finished."""
        return [r[0] for r in self.conn.execute("SELECT strategy FROM results ORDER BY rowid")]

    def results(self) -> dict[str, UnitResult]:
        """Final results per unit that finished (strategies, searches), typed; :class:`BadInputError` for a
        stored result that does not parse."""
        rows = self.conn.execute("SELECT strategy, data FROM results ORDER BY rowid")
        out: dict[str, UnitResult] = {}
        for unit, data in rows:
            try:
                out[unit] = result_from_dict(json.loads(data))
            except (json.JSONDecodeError, BadInputError) as exc:
                raise BadInputError(f"{self.path}: stored result of {unit!r}: {exc}") from None
        return out

    def checkpoint(self, strategy: str) -> tuple[float, dict[str, Any]] | None:
        """The last committed checkpoint of ``strategy``, or None."""
        row = self.conn.execute("SELECT t_s, state FROM checkpoints WHERE strategy = ?", (strategy,)).fetchone()
        return (float(row[0]), json.loads(row[1])) if row else None

    def phases(self) -> list[dict[str, Any]]:
        """Phases in order, with wall and monotonic times (end times None while open)."""
        cur = self.conn.execute(
            "SELECT name, wall_start_s, mono_start_s, wall_end_s, mono_end_s FROM phases ORDER BY rowid"
        )
        keys = ("name", "wall_start_s", "mono_start_s", "wall_end_s", "mono_end_s")
        return [dict(zip(keys, r, strict=True)) for r in cur]

    def count(self, table: str) -> int:
        """Number of committed rows of ``table``."""
        if table not in TABLES:
            raise BadInputError(f"unknown table {table!r}")
        return int(self.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])

    def rows(self, table: str, strategy: str | None = None) -> list[tuple[Any, ...]]:
        """Committed rows of ``table`` in insertion order (optionally of one strategy)."""
        if table not in TABLES:
            raise BadInputError(f"unknown table {table!r}")
        if strategy is None:
            return list(self.conn.execute(f"SELECT * FROM {table} ORDER BY rowid"))
        return list(self.conn.execute(f"SELECT * FROM {table} WHERE strategy = ? ORDER BY rowid", (strategy,)))

    def table_names(self) -> list[str]:
        """Every exportable table (data tables plus manifest, phases and results)."""
        return ["manifest", "phases", "results", *TABLES]
