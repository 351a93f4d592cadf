"""The run store's SQLite schema: one file per run, one table per kind of record.

Every time column is ``t_s``: seconds of device time since the run's start (simulated time in ``sim``
mode, the controller's monotonic clock in ``hil`` mode). Rows of the per-strategy tables carry the
strategy they belong to, so one run file can hold a whole experiment (several strategies).
"""

from __future__ import annotations

SCHEMA_VERSION = 2  # 2: phases carry a boot id; the chain table holds the content digest

#: table name -> column definitions (order is the insert order used by :class:`RunStore`).
TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "inferences": (
        ("strategy", "TEXT NOT NULL"),
        ("seq", "INTEGER NOT NULL"),
        ("t_s", "REAL NOT NULL"),
        ("level", "TEXT NOT NULL"),
        ("pattern_set", "TEXT NOT NULL"),
        ("latency_ms", "REAL NOT NULL"),
        ("energy_j", "REAL NOT NULL"),
        ("deadline_miss", "INTEGER NOT NULL"),
        ("throttled", "INTEGER NOT NULL"),
    ),
    "switches": (
        ("strategy", "TEXT NOT NULL"),
        ("t_s", "REAL NOT NULL"),
        ("from_set", "TEXT"),
        ("to_set", "TEXT NOT NULL"),
        ("duration_ms", "REAL NOT NULL"),
        ("energy_j", "REAL NOT NULL"),
    ),
    "level_changes": (
        ("strategy", "TEXT NOT NULL"),
        ("t_s", "REAL NOT NULL"),
        ("from_level", "TEXT"),
        ("to_level", "TEXT NOT NULL"),
        ("freq_khz", "INTEGER"),
    ),
    "power_samples": (
        ("strategy", "TEXT NOT NULL"),
        ("t_s", "REAL NOT NULL"),
        ("duration_s", "REAL NOT NULL"),
        ("power_w", "REAL NOT NULL"),
        ("throttled", "INTEGER NOT NULL"),
        ("flagged", "INTEGER NOT NULL"),
    ),
    "battery_state": (
        ("strategy", "TEXT NOT NULL"),
        ("t_s", "REAL NOT NULL"),
        ("soc", "REAL NOT NULL"),
        ("voltage_v", "REAL"),
        ("current_a", "REAL"),
        ("load_energy_j", "REAL NOT NULL"),
    ),
    "events": (
        ("strategy", "TEXT"),
        ("t_s", "REAL NOT NULL"),
        ("kind", "TEXT NOT NULL"),
        ("detail", "TEXT"),
    ),
    # A generic log for other components (the search issue keeps its episodes here).
    "log": (
        ("t_s", "REAL NOT NULL"),
        ("source", "TEXT NOT NULL"),
        ("kind", "TEXT NOT NULL"),
        ("data", "TEXT NOT NULL"),
    ),
}

#: The content digest, chained as the run is written (see :mod:`testbed.runstore.chain`): one row per sealed
#: transaction with the highest rowid per data table it covers, the digest of the small tables at that moment,
#: and the chained SHA-256.
CHAIN_DDL = (
    "CREATE TABLE IF NOT EXISTS chain (seq INTEGER PRIMARY KEY, rowids TEXT NOT NULL, meta_sha256 TEXT NOT NULL,"
    " sha256 TEXT NOT NULL)"
)

#: Tables hashed whole at every seal (small, rewritten in place): the manifest, phases, results, checkpoints.
META_TABLES: tuple[tuple[str, str], ...] = (
    ("manifest", "key"),
    ("phases", "rowid"),
    ("results", "rowid"),
    ("checkpoints", "strategy"),
)

DDL = [
    "CREATE TABLE IF NOT EXISTS manifest (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS phases (name TEXT NOT NULL, wall_start_s REAL NOT NULL, mono_start_s REAL NOT NULL,"
    " wall_end_s REAL, mono_end_s REAL, boot_id TEXT)",
    "CREATE TABLE IF NOT EXISTS checkpoints (strategy TEXT PRIMARY KEY, t_s REAL NOT NULL, state TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS results (strategy TEXT PRIMARY KEY, data TEXT NOT NULL)",
    *(f"CREATE TABLE IF NOT EXISTS {name} ({', '.join(f'{c} {t}' for c, t in cols)})" for name, cols in TABLES.items()),
    "CREATE INDEX IF NOT EXISTS inferences_strategy ON inferences (strategy, t_s)",
    CHAIN_DDL,
]

#: Manifest keys a complete run must have (checked by ``testbed verify``).
REQUIRED_MANIFEST = (
    "schema_version",
    "run_uuid",
    "created_wall",
    "config",
    "source_hash",
    "versions",
    "board",
    "kernel",
    "governor",
    "meter",
    "clock_offsets",
    "fidelity",
    "seed",
)
