"""A run's content digest, chained as the run is written, and its replay by the checker.

Every transaction the writer commits ends with a *seal*: a row of the ``chain`` table holding, for each
data table, the highest rowid written so far, the SHA-256 of the small tables (manifest, phases, results,
checkpoints — hashed whole, they change in place) and the chained digest

    sha256(previous digest ‖ rows added to each data table since the previous seal ‖ small-table digest)

with each row hashed as its Python ``repr`` (exact for floats). Rows deleted by a resume (rows after a
checkpoint) make the writer re-seal from the start over what is left (:func:`reseal`), so the chain always
describes the rows that are there. :func:`replay` recomputes the chain from the rows and compares it: a changed,
added or deleted row, an edited result or manifest entry, or a flipped bit inside a value shows as a mismatch
naming the first seal (and table) that disagrees.

Failure modes: SQLite errors propagate to the caller (the writer turns them into ``TestbedError``, the checker
into a named FAIL).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass

from testbed.runstore.schema import META_TABLES, TABLES

GENESIS = hashlib.sha256(b"rt3-runstore-chain-v1").hexdigest()


def _hash_rows(h: hashlib._Hash, conn: sqlite3.Connection, table: str, after: int, upto: int) -> None:
    h.update(f"table {table}\n".encode())
    for row in conn.execute(f"SELECT * FROM {table} WHERE rowid > ? AND rowid <= ? ORDER BY rowid", (after, upto)):
        h.update(repr(row).encode())
        h.update(b"\n")


def meta_digest(conn: sqlite3.Connection) -> str:
    """SHA-256 of the small tables as they are now."""
    h = hashlib.sha256()
    for table, order in META_TABLES:
        h.update(f"table {table}\n".encode())
        for row in conn.execute(f"SELECT * FROM {table} ORDER BY {order}"):
            h.update(repr(row).encode())
            h.update(b"\n")
    return h.hexdigest()


def _max_rowids(conn: sqlite3.Connection) -> dict[str, int]:
    return {t: int(conn.execute(f"SELECT coalesce(max(rowid), 0) FROM {t}").fetchone()[0]) for t in TABLES}


def _link(conn: sqlite3.Connection, prev: str, before: dict[str, int], now: dict[str, int], meta: str) -> str:
    h = hashlib.sha256(prev.encode())
    for table in TABLES:
        _hash_rows(h, conn, table, before.get(table, 0), now[table])
    h.update(f"meta {meta}\n".encode())
    return h.hexdigest()


def _last(conn: sqlite3.Connection) -> tuple[str, dict[str, int]]:
    row = conn.execute("SELECT sha256, rowids FROM chain ORDER BY seq DESC LIMIT 1").fetchone()
    if row is None:
        return GENESIS, {}
    return str(row[0]), {k: int(v) for k, v in json.loads(row[1]).items()}


def seal(conn: sqlite3.Connection) -> None:
    """Append a seal covering everything written since the last one (call inside the writing transaction)."""
    prev, before = _last(conn)
    now = _max_rowids(conn)
    meta = meta_digest(conn)
    digest = _link(conn, prev, before, now, meta)
    conn.execute("INSERT INTO chain (rowids, meta_sha256, sha256) VALUES (?, ?, ?)", (json.dumps(now), meta, digest))


def reseal(conn: sqlite3.Connection) -> None:
    """Start the chain again over the rows that are there (after rows were deleted); inside a transaction."""
    conn.execute("DELETE FROM chain")
    seal(conn)


@dataclass(frozen=True)
class Replay:
    """The outcome of :func:`replay`: ``ok``, the number of seals, and what disagreed first."""

    ok: bool
    seals: int
    detail: str


def replay(conn: sqlite3.Connection) -> Replay:
    """Recompute the chain from the rows and compare it with the stored one (read-only)."""
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "chain" not in names:
        return Replay(False, 0, "no content digest recorded (a run written before schema 2): cannot detect tampering")
    seals = list(conn.execute("SELECT seq, rowids, meta_sha256, sha256 FROM chain ORDER BY seq"))
    if not seals:
        return Replay(False, 0, "the content digest chain is empty")
    prev, before = GENESIS, {t: 0 for t in TABLES}
    for seq, rowids, meta, digest in seals:
        now = {t: int(v) for t, v in json.loads(rowids).items()}
        if set(now) != set(TABLES):
            return Replay(False, len(seals), f"seal {seq}: names tables {sorted(now)}, not the run's data tables")
        mine = _link(conn, prev, before, now, meta)
        if mine != digest:
            return Replay(False, len(seals), f"seal {seq}: rows up to it do not hash to the recorded digest")
        prev, before = digest, now
    if _max_rowids(conn) != before:
        extra = [t for t, n in _max_rowids(conn).items() if n != before[t]]
        return Replay(False, len(seals), f"rows after the last seal in {', '.join(extra)} (added after writing)")
    counts = {t: int(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in TABLES}
    sealed = {t: int(conn.execute(f"SELECT count(*) FROM {t} WHERE rowid <= ?", (before[t],)).fetchone()[0])
              for t in TABLES}  # fmt: skip
    if counts != sealed:
        return Replay(False, len(seals), "row counts differ from the sealed ones")
    if meta_digest(conn) != seals[-1][2]:
        return Replay(False, len(seals), "manifest, phases, results or checkpoints changed after the last seal")
    return Replay(True, len(seals), f"{len(seals)} seals replayed, digest {prev[:16]}…")
