"""One SQLite file per run: WAL journal, rows buffered in memory and committed in small batches.

A :class:`RunStore` buffers rows per table and commits them at most ``commit_interval_s`` (default
1 s) apart, together with the writer's checkpoint, in one transaction; a crash (even SIGKILL) loses at
most the rows of the last interval, and what survives is always consistent with the checkpoint, so a
run can resume from it. Values are SI units (see :mod:`testbed.runstore.schema`).

A run has one writer: :meth:`RunStore.create` and :meth:`RunStore.open` take an exclusive lock on
``run.lock`` beside the run file for the life of the process's stores (several connections of one process —
one per writer thread — share it); a second process opening the run is refused with a one-line
:class:`~devices.errors.BadInputError` naming the holder. Every transaction ends with a seal of the chained
content digest (:mod:`testbed.runstore.chain`). Phases record the boot id, so monotonic times are compared only
within one boot.

Failure modes: :class:`~devices.errors.BadInputError` when the file is not a run store or is missing
(when opened read-only), or when another process writes the run; SQLite errors at write time propagate as
:class:`~devices.errors.TestbedError`.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from devices.errors import BadInputError, TestbedError
from devices.procid import this_boot_id
from testbed.runstore.chain import reseal, seal
from testbed.runstore.results import UnitResult, result_from_dict
from testbed.runstore.schema import CHAIN_DDL, DDL, SCHEMA_VERSION, TABLES

RUN_FILE = "run.sqlite"
LOCK_FILE = "run.lock"


class _WriterLocks:
    """Per-process registry of run locks: one ``flock`` per run file, shared by this process's stores."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._held: dict[Path, tuple[int, int]] = {}  # run file -> (fd, users)

    def acquire(self, run_path: Path) -> Path:
        key = run_path.resolve()
        with self._mutex:
            if key in self._held:
                fd, users = self._held[key]
                self._held[key] = (fd, users + 1)
                return key
            lock = key.with_name(LOCK_FILE)
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
                os.close(fd)
                raise BadInputError(
                    f"{key.parent}: the run is being written by {holder}; a run has one writer — wait for it "
                    "to finish or stop it, then --resume"
                ) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()}".encode(), 0)
            self._held[key] = (fd, 1)
            return key

    def release(self, key: Path) -> None:
        with self._mutex:
            if key not in self._held:
                return
            fd, users = self._held[key]
            if users > 1:
                self._held[key] = (fd, users - 1)
                return
            del self._held[key]
            try:
                os.ftruncate(fd, 0)
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)


_LOCKS = _WriterLocks()


def run_file(path: str | Path) -> Path:
    """The SQLite file of a run given the run directory or the file itself."""
    p = Path(path)
    return p / RUN_FILE if p.is_dir() else p


_STRATEGY_TABLES = [name for name, cols in TABLES.items() if cols[0][0] == "strategy"]


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
        self.boot_id = this_boot_id()
        self._mono = time.monotonic  # the phases' monotonic clock (tests stand in a rebooted machine's)
        self._lock_key: Path | None = None

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
        key = _LOCKS.acquire(path)
        try:
            conn = cls._connect(path)
            conn.execute("BEGIN IMMEDIATE")
            for stmt in DDL:
                conn.execute(stmt)
            conn.executemany(
                "INSERT INTO manifest (key, value) VALUES (?, ?)",
                [(k, json.dumps(v)) for k, v in {"schema_version": SCHEMA_VERSION, **manifest}.items()],
            )
            seal(conn)
            conn.execute("COMMIT")
        except BaseException:
            _LOCKS.release(key)
            raise
        store = cls(conn, path, commit_interval_s)
        store._lock_key = key
        return store

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
        try:
            key = _LOCKS.acquire(p)
        except BadInputError:
            conn.close()
            raise
        store = cls(conn, p, commit_interval_s)
        store._lock_key = key
        try:
            store._upgrade(names)
        except BaseException:
            store._unlock()
            conn.close()
            raise
        return store

    def _upgrade(self, tables: set[str]) -> None:
        """Bring a run written by an older testbed up to this schema (a boot id column, the digest chain)."""
        cols = {r[1] for r in self.conn.execute("PRAGMA table_info(phases)")}
        if "boot_id" in cols and "chain" in tables:
            return

        def add() -> None:
            if "boot_id" not in cols:
                self.conn.execute("ALTER TABLE phases ADD COLUMN boot_id TEXT")
            if "chain" not in tables:
                self.conn.execute(CHAIN_DDL)

        self._write(add, rechain=True)

    def _unlock(self) -> None:
        if self._lock_key is not None:
            _LOCKS.release(self._lock_key)
            self._lock_key = None

    def _write(self, body: Callable[[], object], *, rechain: bool = False) -> None:
        """Run ``body`` in one write transaction that ends with a seal (a full re-seal with ``rechain``)."""
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            body()
            (reseal if rechain else seal)(self.conn)
            self.conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise TestbedError(f"{self.path}: could not write the run store: {exc}") from None

    def close(self) -> None:
        """Commit what is buffered, close the file and give up the writer's lock."""
        try:
            self.commit()
            self.conn.close()
        finally:
            self._unlock()

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

        def body() -> None:
            for name, rows in self._buffers.items():
                if rows:
                    self.conn.executemany(self._inserts[name], rows)
            if checkpoint is not None:
                strategy, t_s, state = checkpoint
                self.conn.execute(
                    "INSERT OR REPLACE INTO checkpoints (strategy, t_s, state) VALUES (?, ?, ?)",
                    (strategy, t_s, json.dumps(state)),
                )

        self._write(body)
        for rows in self._buffers.values():
            rows.clear()
        self._last_commit = time.monotonic()
        self.commits += 1

    def set_manifest(self, key: str, value: Any) -> None:
        """Set one manifest entry (committed at once)."""
        self._write(
            lambda: self.conn.execute(
                "INSERT OR REPLACE INTO manifest (key, value) VALUES (?, ?)", (key, json.dumps(value))
            )
        )

    def begin_phase(self, name: str) -> None:
        """Record the wall and monotonic start time of a phase and this boot's id (committed at once)."""
        self._write(
            lambda: self.conn.execute(
                "INSERT INTO phases (name, wall_start_s, mono_start_s, boot_id) VALUES (?, ?, ?, ?)",
                (name, time.time(), self._mono(), self.boot_id),
            )
        )

    def end_phase(self, name: str) -> None:
        """Record the end time of the latest open phase called ``name``."""
        self._write(
            lambda: self.conn.execute(
                "UPDATE phases SET wall_end_s = ?, mono_end_s = ? WHERE rowid = "
                "(SELECT max(rowid) FROM phases WHERE name = ? AND wall_end_s IS NULL)",
                (time.time(), self._mono(), name),
            )
        )

    def mark_interrupted(self) -> list[str]:
        """Rename phases that never ended (the process died) to ``<name> (interrupted)``; returns their names.

        Their end times stay unknown (NULL): the checker accepts an open phase only when it is marked so.
        """
        names = [r[0] for r in self.conn.execute("SELECT name FROM phases WHERE wall_end_s IS NULL")]
        self._write(
            lambda: self.conn.execute(
                "UPDATE phases SET name = name || ' (interrupted)' "
                "WHERE wall_end_s IS NULL AND name NOT LIKE '%(interrupted)'"
            )
        )
        return names

    def set_result(self, unit: str, result: UnitResult) -> None:
        """Store a unit's (strategy's or search's) final result, after committing its remaining rows."""
        self.commit()
        self._write(
            lambda: self.conn.execute(
                "INSERT OR REPLACE INTO results (strategy, data) VALUES (?, ?)", (unit, json.dumps(result.to_dict()))
            )
        )

    def discard_after(self, strategy: str, t_s: float) -> None:
        """Delete a strategy's rows later than ``t_s`` (used when resuming from a checkpoint)."""
        self._delete_rows(
            [(f"DELETE FROM {n} WHERE strategy = ? AND t_s > ?", (strategy, t_s)) for n in _STRATEGY_TABLES]
        )

    def clear_strategy(self, strategy: str) -> None:
        """Delete every row of ``strategy`` (a restart from scratch)."""
        self._delete_rows(
            [(f"DELETE FROM {n} WHERE strategy = ?", (strategy,)) for n in _STRATEGY_TABLES]
            + [("DELETE FROM checkpoints WHERE strategy = ?", (strategy,))]
        )

    def _delete_rows(self, statements: list[tuple[str, tuple[Any, ...]]]) -> None:
        """Run DELETE statements in one transaction; re-seal the chain from the start if any row went."""
        deleted = 0

        def body() -> None:
            nonlocal deleted
            for sql, args in statements:
                deleted += self.conn.execute(sql, args).rowcount
            if deleted:
                reseal(self.conn)

        self._write(body)

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
            "SELECT name, wall_start_s, mono_start_s, wall_end_s, mono_end_s, boot_id FROM phases ORDER BY rowid"
        )
        keys = ("name", "wall_start_s", "mono_start_s", "wall_end_s", "mono_end_s", "boot_id")
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
