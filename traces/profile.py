"""The profile table: measured (or modelled) cost of each pattern set at each frequency level.

CSV, one row per (pattern set, level), ``#`` comment lines first (``# key=value; …`` metadata)::

    # rt3_profile v1; board=rpi4; source=model
    pattern_set,level,freq_khz,sparsity,accuracy,latency_p50_ms,latency_p90_ms,latency_p99_ms,
        energy_per_inference_j,mean_power_w,peak_power_w,idle_power_w,throttled,repetitions,temp_c_max

Units: milliseconds, joules, watts, kHz; ``accuracy`` and ``sparsity`` in [0, 1]; ``throttled`` is 0/1
(a measurement taken while the board throttled); ``temp_c_max`` is the hottest thermal-zone reading
seen around the measurement windows (0 = not recorded). The last three columns are optional. Every problem raises
:class:`~devices.errors.ParseError` naming the file, the line and the field.
"""

from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from devices.errors import BadInputError, ParseError

KIND = "rt3_profile"
COLUMNS = (
    "pattern_set",
    "level",
    "freq_khz",
    "sparsity",
    "accuracy",
    "latency_p50_ms",
    "latency_p90_ms",
    "latency_p99_ms",
    "energy_per_inference_j",
    "mean_power_w",
    "peak_power_w",
    "idle_power_w",
    "throttled",
    "repetitions",
    "temp_c_max",
)


@dataclass(frozen=True)
class ProfileRow:
    """Cost of one pattern set at one level (ms, J, W, kHz)."""

    pattern_set: str
    level: str
    freq_khz: int
    sparsity: float
    accuracy: float
    latency_p50_ms: float
    latency_p90_ms: float
    latency_p99_ms: float
    energy_per_inference_j: float
    mean_power_w: float
    peak_power_w: float
    idle_power_w: float
    throttled: int = 0
    repetitions: int = 1
    temp_c_max: float = 0.0


@dataclass
class ProfileTable:
    """All rows, the level order (fastest first) and the pattern-set order (densest first)."""

    rows: dict[tuple[str, str], ProfileRow]
    levels: list[str]
    pattern_sets: list[str]
    meta: dict[str, str]
    path: str = "<memory>"

    def get(self, pattern_set: str, level: str) -> ProfileRow:
        """The row of ``(pattern_set, level)``; :class:`BadInputError` if the profile lacks it."""
        try:
            return self.rows[(pattern_set, level)]
        except KeyError:
            raise BadInputError(
                f"{self.path}: no profile row for pattern set {pattern_set!r} at level {level!r}"
            ) from None

    def idle_power_w(self, level: str) -> float:
        """Idle power at ``level`` (the densest pattern set's row; idle does not depend on the model)."""
        return self.get(self.pattern_sets[0], level).idle_power_w

    def freq_khz(self, level: str) -> int:
        return self.get(self.pattern_sets[0], level).freq_khz

    def accuracy(self, pattern_set: str) -> float:
        return self.get(pattern_set, self.levels[0]).accuracy

    def to_csv(self) -> str:
        """The table as CSV text with its metadata comment."""
        buf = io.StringIO()
        meta = "; ".join(f"{k}={v}" for k, v in self.meta.items())
        buf.write(f"# {KIND} v1" + (f"; {meta}" if meta else "") + "\n")
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(COLUMNS)
        for ps in self.pattern_sets:
            for lv in self.levels:
                r = asdict(self.rows[(ps, lv)])
                w.writerow([_fmt(r[c]) for c in COLUMNS])
        return buf.getvalue()


def _fmt(v: object) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def build_table(rows: list[ProfileRow], meta: dict[str, str], path: str = "<memory>") -> ProfileTable:
    """Index rows; levels sorted by frequency (fastest first), pattern sets by sparsity (densest first).

    Raises :class:`BadInputError` for duplicates or a grid with holes.
    """
    table: dict[tuple[str, str], ProfileRow] = {}
    for r in rows:
        key = (r.pattern_set, r.level)
        if key in table:
            raise BadInputError(f"{path}: duplicate row for pattern set {r.pattern_set!r} at level {r.level!r}")
        table[key] = r
    if not table:
        raise BadInputError(f"{path}: the profile has no rows")
    freq = {r.level: r.freq_khz for r in rows}
    spars = {r.pattern_set: r.sparsity for r in rows}
    levels = sorted(freq, key=lambda lv: -freq[lv])
    sets = sorted(spars, key=lambda ps: spars[ps])
    for ps in sets:
        for lv in levels:
            if (ps, lv) not in table:
                raise BadInputError(f"{path}: pattern set {ps!r} has no row for level {lv!r}")
    return ProfileTable(table, levels, sets, meta, path)


def parse_profile(text: str, path: str = "<text>") -> ProfileTable:
    """Parse profile CSV text (see the module text)."""
    meta: dict[str, str] = {}
    lines = text.splitlines()
    body_start = 0
    for n, line in enumerate(lines):
        if line.startswith("#"):
            for part in line.lstrip("#").split(";"):
                if "=" in part:
                    k, v = part.split("=", 1)
                    meta[k.strip()] = v.strip()
            body_start = n + 1
        elif line.strip():
            break
    reader = csv.reader(lines[body_start:])
    try:
        header = next(reader)
    except StopIteration:
        raise ParseError(path, None, "no header row") from None
    header = [h.strip() for h in header]
    missing = [c for c in COLUMNS[:12] if c not in header]
    if missing:
        raise ParseError(path, body_start + 1, f"missing column(s): {', '.join(missing)}")
    types = {f.name: f.type for f in fields(ProfileRow)}
    rows: list[ProfileRow] = []
    for idx, rec in enumerate(reader):
        line_no = body_start + 2 + idx
        if not rec or all(not x.strip() for x in rec):
            continue
        if len(rec) != len(header):
            raise ParseError(path, line_no, f"{len(rec)} fields, expected {len(header)}")
        d = dict(zip(header, (x.strip() for x in rec), strict=True))
        values: dict[str, object] = {}
        for col in COLUMNS:
            if col not in d:
                continue
            raw = d[col]
            kind = types[col]
            if kind == "str":
                if not raw:
                    raise ParseError(path, line_no, f"{col} is empty")
                values[col] = raw
                continue
            try:
                num = float(raw)
            except ValueError:
                raise ParseError(path, line_no, f"{col}={raw!r} is not a number") from None
            if not math.isfinite(num) or num < 0:
                raise ParseError(path, line_no, f"{col}={raw} must be a finite number ≥ 0")
            values[col] = int(num) if kind == "int" else num
        row = ProfileRow(**values)  # type: ignore[arg-type]
        _check_row(row, path, line_no)
        rows.append(row)
    try:
        return build_table(rows, meta, path)
    except BadInputError as exc:
        raise ParseError(path, None, str(exc).removeprefix(f"{path}: ")) from None


def _check_row(r: ProfileRow, path: str, line: int) -> None:
    if not (r.latency_p50_ms > 0 and r.latency_p50_ms <= r.latency_p90_ms <= r.latency_p99_ms):
        raise ParseError(path, line, "latencies must satisfy 0 < p50 ≤ p90 ≤ p99")
    if not (0 <= r.accuracy <= 1 and 0 <= r.sparsity < 1):
        raise ParseError(path, line, "accuracy must be in [0, 1] and sparsity in [0, 1)")
    if r.freq_khz <= 0 or r.mean_power_w <= 0 or r.energy_per_inference_j <= 0:
        raise ParseError(path, line, "freq_khz, mean_power_w and energy_per_inference_j must be > 0")


def load_profile_table(path: str | os.PathLike[str]) -> ProfileTable:
    """Load a profile CSV file; :class:`BadInputError` if there is no such file, :class:`ParseError` if it is bad."""
    p = Path(path)
    if not p.is_file():
        raise BadInputError(f"{p}: no such profile table (a CSV file written by `testbed profile`)")
    return parse_profile(p.read_text(encoding="utf-8"), str(p))
