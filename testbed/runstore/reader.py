"""Read-only access to a run store: everything a reader of a run (analysis, reports) may see, and nothing to write with.

:meth:`RunReader.open` takes a run directory or its ``run.sqlite`` and never writes a byte: a run that is not
being written (no ``-wal`` file beside it) is opened *immutable*, so SQLite creates no ``-wal``/``-shm`` files
next to it; a run that is being written (or was killed mid-write) is opened in SQLite's read-only mode and sees
what was committed so far. A path that is not a run store raises :class:`~devices.errors.BadInputError`, one line
naming the file.

The reader gives the manifest (:attr:`RunReader.manifest`, :attr:`RunReader.run_id` = the manifest's
``run_uuid``, :attr:`RunReader.fidelity`), the typed results (:meth:`RunReader.results`: a
:class:`~testbed.runstore.results.StrategyResult` per strategy, a
:class:`~testbed.runstore.results.SearchSummary` per search), the phases, the rows of any table (as tuples or
pandas frames), the profile table the run's configuration names (:meth:`RunReader.profile_table_path`), and
:func:`content_sha256`, the digest of the store's content that reports cite.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from devices.errors import BadInputError
from testbed.paths import profile_table_path
from testbed.runstore.chain import Replay, replay
from testbed.runstore.results import SearchSummary, StrategyResult, UnitResult, result_from_dict
from testbed.runstore.schema import TABLES
from testbed.runstore.store import RUN_FILE

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Phase", "RunReader", "SearchSummary", "StrategyResult", "UnitResult", "content_sha256"]

#: Prefix of the content digest; changes when the digest's definition does.
DIGEST_VERSION = b"rt3-runstore-content-v1\n"


def content_sha256(conn: sqlite3.Connection) -> str:
    """SHA-256 (hex) of a run store's content: every table (sorted by name), its column names and its rows in
    insertion order, each row as its Python ``repr`` (exact for floats). Independent of the file's page layout,
    journal state and SQLite version, so two copies of a run, or a run before and after a WAL checkpoint, agree."""
    h = hashlib.sha256(DIGEST_VERSION)
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    for name in names:
        if name.startswith("sqlite_"):
            continue
        cur = conn.execute(f'SELECT * FROM "{name}" ORDER BY rowid')
        columns = [d[0] for d in cur.description]
        h.update(f"table {name} {columns!r}\n".encode())
        for row in cur:
            h.update(repr(row).encode())
            h.update(b"\n")
    return h.hexdigest()


@dataclass(frozen=True)
class Phase:
    """A phase of a run: wall-clock (epoch s) and monotonic (s) start and end; the ends are None while open."""

    name: str
    wall_start_s: float
    mono_start_s: float
    wall_end_s: float | None
    mono_end_s: float | None
    #: The boot the phase began in (``None`` for runs written before boot ids were recorded): monotonic times
    #: compare only within one boot.
    boot_id: str | None = None

    @property
    def ends_before_it_starts(self) -> bool:
        """The phase ended earlier than it began on either clock (False while it is open)."""
        if self.mono_end_s is None or self.wall_end_s is None:
            return False
        return self.mono_end_s < self.mono_start_s or self.wall_end_s < self.wall_start_s


def _run_file(path: str | Path) -> Path:
    p = Path(path)
    f = p / RUN_FILE if p.is_dir() else p
    if not f.is_file():
        raise BadInputError(f"{path}: not a run (no {RUN_FILE}); pass a directory written by `testbed run`")
    return f


def _connect(f: Path) -> sqlite3.Connection:
    wal = f.with_name(f.name + "-wal")
    flags = "mode=ro" if wal.exists() else "mode=ro&immutable=1"
    return sqlite3.connect(f"file:{quote(str(f.resolve()))}?{flags}", uri=True)


class RunReader:
    """A run store opened read-only (see the module text); a context manager, or call :meth:`close`."""

    def __init__(self, conn: sqlite3.Connection, path: Path, manifest: dict[str, Any]) -> None:
        self._conn = conn
        self.path = path
        self.manifest = manifest

    @classmethod
    def open(cls, path: str | Path) -> RunReader:
        """Open the run at ``path`` (its directory or ``run.sqlite``); :class:`BadInputError` if it is none."""
        f = _run_file(path)
        try:
            conn = _connect(f)
        except sqlite3.Error as exc:
            raise BadInputError(f"{f}: cannot open the run store: {exc}") from None
        try:
            manifest = {k: json.loads(v) for k, v in conn.execute("SELECT key, value FROM manifest")}
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise BadInputError(f"{f}: not a run store: {exc}") from None
        except json.JSONDecodeError as exc:
            conn.close()
            raise BadInputError(f"{f}: corrupt manifest: {exc.msg}") from None
        return cls(conn, f, manifest)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> RunReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the manifest ----------------------------------------------------------------------------------------

    @property
    def run_id(self) -> str:
        """The run's UUID (the manifest's ``run_uuid``); ``?`` for a store without one."""
        return str(self.manifest.get("run_uuid") or "?")

    @property
    def fidelity(self) -> str:
        """Which level produced the run (``simulation``, ``hardware-in-the-loop (emulated board)``, …)."""
        return str(self.manifest.get("fidelity") or "?")

    @property
    def config(self) -> dict[str, Any]:
        """The run's configuration as recorded in the manifest (empty when none)."""
        cfg = self.manifest.get("config")
        return cfg if isinstance(cfg, dict) else {}

    def profile_table_path(self) -> Path | None:
        """The profile table the run's configuration names, as a path (None when it names none).

        New runs record the resolved absolute path; for older runs a relative path is taken from the
        experiment's ``base_dir`` and a bundled name to its bundled file (the rule of :mod:`testbed.paths`).
        """
        table = (self.config.get("profile") or {}).get("table")
        if not table:
            return None
        return profile_table_path(str(table), str(self.config.get("base_dir") or "."))

    # -- results, phases, rows ---------------------------------------------------------------------------------

    def results(self) -> dict[str, UnitResult]:
        """The final result per finished strategy (or search), in the order they finished."""
        try:
            stored = list(self._conn.execute("SELECT strategy, data FROM results ORDER BY rowid"))
            return {s: result_from_dict(json.loads(d)) for s, d in stored}
        except sqlite3.DatabaseError as exc:
            raise BadInputError(f"{self.path}: cannot read results: {exc}") from None
        except json.JSONDecodeError as exc:
            raise BadInputError(f"{self.path}: corrupt result: {exc.msg}") from None

    def phases(self) -> list[Phase]:
        """The run's phases in the order they began."""
        cols = {r[1] for r in self.query("PRAGMA table_info(phases)")}
        boot = "boot_id" if "boot_id" in cols else "NULL"
        rows = self.query(
            f"SELECT name, wall_start_s, mono_start_s, wall_end_s, mono_end_s, {boot} FROM phases ORDER BY rowid"
        )
        return [Phase(*row) for row in rows]

    def table_names(self) -> list[str]:
        """Every table of the run store (data tables, manifest, results, phases, checkpoints), sorted."""
        return [r[0] for r in self.query("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]

    def finished_units(self) -> list[str]:
        """The strategies (or searches) that have a final result, in the order they finished."""
        return [r[0] for r in self.query("SELECT strategy FROM results ORDER BY rowid")]

    def _select(self, table: str, strategy: str | None) -> tuple[str, tuple[str, ...]]:
        known = self.table_names()
        if table not in known:
            raise BadInputError(f"{self.path}: unknown table {table!r}; tables: {', '.join(known)}")
        if strategy is None:
            return f"SELECT * FROM {table} ORDER BY rowid", ()
        if table not in TABLES:
            raise BadInputError(f"{self.path}: table {table!r} has no strategy column")
        return f"SELECT * FROM {table} WHERE strategy = ? ORDER BY rowid", (strategy,)

    def rows(self, table: str, strategy: str | None = None) -> list[tuple[Any, ...]]:
        """Rows of a table in insertion order, optionally of one strategy (data tables,
        :data:`~testbed.runstore.schema.TABLES`); columns in schema order."""
        sql, args = self._select(table, strategy)
        try:
            return list(self._conn.execute(sql, args))
        except sqlite3.DatabaseError as exc:
            raise BadInputError(f"{self.path}: cannot read table {table!r}: {exc}") from None

    def frame(self, table: str, strategy: str | None = None) -> pd.DataFrame:
        """A data table as a pandas DataFrame (needs the ``analysis`` extra); as :meth:`rows` otherwise."""
        import pandas as pd

        sql, args = self._select(table, strategy)
        try:
            return pd.read_sql_query(sql, self._conn, params=args)
        except (pd.errors.DatabaseError, sqlite3.Error) as exc:
            raise BadInputError(f"{self.path}: cannot read table {table!r}: {exc}") from None

    def query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Rows of a read-only SQL query (the connection cannot write); :class:`BadInputError` on an SQL error."""
        try:
            return list(self._conn.execute(sql, args))
        except sqlite3.DatabaseError as exc:
            raise BadInputError(f"{self.path}: cannot read the run store: {exc}") from None

    def query_one(self, sql: str, args: tuple[Any, ...] = ()) -> tuple[Any, ...] | None:
        """The first row of :meth:`query`, or None."""
        rows = self.query(sql, args)
        return rows[0] if rows else None

    # -- integrity -------------------------------------------------------------------------------------------

    def integrity_problems(self, limit: int = 5) -> list[str]:
        """SQLite's ``PRAGMA integrity_check`` findings (empty when the file is sound)."""
        rows = self.query(f"PRAGMA integrity_check({int(limit)})")
        found = [str(r[0]) for r in rows]
        return [] if found == ["ok"] else found

    def replay_chain(self) -> Replay:
        """Recompute the chained content digest from the rows (:func:`testbed.runstore.chain.replay`)."""
        try:
            return replay(self._conn)
        except (sqlite3.DatabaseError, ValueError, KeyError, TypeError) as exc:
            return Replay(False, 0, f"cannot replay the digest chain: {exc}")

    @cached_property
    def content_sha256(self) -> str:
        """:func:`content_sha256` of this run store (computed once per reader)."""
        return content_sha256(self._conn)
