"""Cell parameter files (TOML) for the equivalent-circuit model, and the bundled cells.

::

    name = "phone-lco"
    capacity_ah = 2.465        # charge from SoC 1 to SoC 0
    v_cutoff_v = 3.0
    v_max_v = 4.2
    r0_ohm = 0.05
    ocv = [[0.0, 3.0], [0.5, 3.79], [1.0, 4.198]]   # [soc, volts], soc from 0 to 1, increasing

    [[rc]]                     # zero to two RC pairs
    r_ohm = 0.0133
    c_f = 1607.0

    [sources]                  # where each number comes from (free text, shown by `battery cells`)
    ocv = "…"

Bundled cells live in ``testbed/data/cell-<name>.toml``; :func:`load_cell` takes a bundled name or a
path. Every problem raises :class:`~devices.errors.ParseError` naming the file, the line (where the
key is found) and what is wrong.
"""

from __future__ import annotations

import bisect
import itertools
import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devices.errors import BadInputError, ParseError
from testbed.paths import CELLS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

MAX_RC = 2


@dataclass(frozen=True)
class RcPair:
    """One RC pair of the Thevenin model: resistance (Ω) and capacitance (F); τ = R·C seconds."""

    r_ohm: float
    c_f: float

    @property
    def tau_s(self) -> float:
        return self.r_ohm * self.c_f


@dataclass(frozen=True)
class Cell:
    """A cell's equivalent-circuit parameters; ``ocv_soc`` ascending from 0 to 1."""

    name: str
    capacity_ah: float
    v_cutoff_v: float
    v_max_v: float
    r0_ohm: float
    ocv_soc: tuple[float, ...]
    ocv_v: tuple[float, ...]
    rc: tuple[RcPair, ...] = ()
    description: str = ""
    sources: dict[str, str] = field(default_factory=dict)
    path: str | None = None

    def ocv(self, soc: float) -> float:
        """Open-circuit voltage (V) at ``soc`` by linear interpolation, clamped to the table ends."""
        xs, ys = self.ocv_soc, self.ocv_v
        if soc <= xs[0]:
            return ys[0]
        if soc >= xs[-1]:
            return ys[-1]
        k = bisect.bisect_right(xs, soc)
        x0, x1 = xs[k - 1], xs[k]
        return ys[k - 1] + (ys[k] - ys[k - 1]) * (soc - x0) / (x1 - x0)

    def energy_j(self, soc_from: float = 1.0, soc_to: float = 0.0) -> float:
        """Open-circuit energy between two states of charge: ``3600·Q·∫OCV dsoc`` joules (exact for the
        piecewise-linear table)."""
        lo, hi = min(soc_from, soc_to), max(soc_from, soc_to)
        pts = [lo, *[s for s in self.ocv_soc if lo < s < hi], hi]
        total = 0.0
        for a, b in itertools.pairwise(pts):
            total += 0.5 * (self.ocv(a) + self.ocv(b)) * (b - a)
        return 3600.0 * self.capacity_ah * total

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "description": self.description,
            "capacity_ah": self.capacity_ah,
            "v_cutoff_v": self.v_cutoff_v,
            "v_max_v": self.v_max_v,
            "r0_ohm": self.r0_ohm,
            "rc": [{"r_ohm": p.r_ohm, "c_f": p.c_f, "tau_s": p.tau_s} for p in self.rc],
            "energy_wh": self.energy_j() / 3600.0,
            "ocv_points": len(self.ocv_soc),
            "sources": self.sources,
            "path": self.path,
        }


def _line_of(text: str, key: str) -> int | None:
    """The first line of ``text`` that assigns ``key`` (or, for ``[[table]]``, that opens it)."""
    pattern = rf"^[ \t]*{re.escape(key)}[ \t]*$" if key.startswith("[") else rf"^[ \t]*{re.escape(key)}[ \t]*="
    m = re.search(pattern, text, re.MULTILINE)
    return text[: m.start()].count("\n") + 1 if m else None


def _num(data: dict[str, Any], key: str, path: str, text: str, *, minimum: float | None = None) -> float:
    if key not in data:
        raise ParseError(path, None, f"missing key {key!r}")
    v = data[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ParseError(path, _line_of(text, key), f"{key} must be a finite number, got {v!r}")
    if minimum is not None and v < minimum:
        raise ParseError(path, _line_of(text, key), f"{key} must be ≥ {minimum:g}, got {v!r}")
    return float(v)


def parse_cell(text: str, path: str, default_name: str = "cell") -> Cell:
    """Build a :class:`Cell` from TOML text; :class:`ParseError` for any malformed or missing value."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = re.search(r"line (\d+)", msg)
        raise ParseError(path, int(m.group(1)) if m else None, f"invalid TOML: {msg}") from None
    known = {
        "name",
        "description",
        "chemistry",
        "capacity_ah",
        "v_cutoff_v",
        "v_max_v",
        "r0_ohm",
        "ocv",
        "rc",
        "sources",
    }
    for key in data:
        if key not in known:
            raise ParseError(path, _line_of(text, key), f"unknown key {key!r}; known keys: {', '.join(sorted(known))}")
    capacity = _num(data, "capacity_ah", path, text)
    if capacity <= 0:
        raise ParseError(path, _line_of(text, "capacity_ah"), f"capacity_ah must be positive, got {capacity}")
    v_cut = _num(data, "v_cutoff_v", path, text, minimum=0.0)
    v_max = _num(data, "v_max_v", path, text, minimum=0.0)
    if v_cut >= v_max:
        raise ParseError(path, _line_of(text, "v_cutoff_v"), f"v_cutoff_v ({v_cut}) must be below v_max_v ({v_max})")
    r0 = _num(data, "r0_ohm", path, text, minimum=0.0)
    ocv_line = _line_of(text, "ocv")
    table = data.get("ocv")
    if not isinstance(table, list) or len(table) < 2:
        raise ParseError(path, ocv_line, "ocv must be a list of at least two [soc, volts] pairs")
    socs: list[float] = []
    volts: list[float] = []
    for k, pair in enumerate(table):
        ok = (
            isinstance(pair, list)
            and len(pair) == 2
            and all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in pair)
        )
        if not ok:
            raise ParseError(path, ocv_line, f"ocv entry {k} must be [soc, volts] numbers, got {pair!r}")
        s, v = float(pair[0]), float(pair[1])
        if socs and s <= socs[-1]:
            raise ParseError(path, ocv_line, f"ocv soc values must increase: {s} after {socs[-1]} (entry {k})")
        if v <= 0:
            raise ParseError(path, ocv_line, f"ocv voltage must be positive, got {v} (entry {k})")
        socs.append(s)
        volts.append(v)
    if socs[0] != 0.0 or socs[-1] != 1.0:
        raise ParseError(path, ocv_line, f"ocv must span soc 0 to 1, spans {socs[0]} to {socs[-1]}")
    if max(volts) <= v_cut:
        raise ParseError(
            path,
            ocv_line,
            f"ocv tops out at {max(volts)} V, not above v_cutoff_v ({v_cut} V): the cell could never run",
        )
    rc_raw = data.get("rc", [])
    if not isinstance(rc_raw, list) or len(rc_raw) > MAX_RC:
        raise ParseError(path, _line_of(text, "[[rc]]"), f"rc must be 0 to {MAX_RC} [[rc]] tables")
    pairs: list[RcPair] = []
    for item in rc_raw:
        if not isinstance(item, dict):
            raise ParseError(path, None, "each [[rc]] must be a table with r_ohm and c_f")
        r = _num(item, "r_ohm", path, text)
        c = _num(item, "c_f", path, text)
        for key, value in (("r_ohm", r), ("c_f", c)):
            if value <= 0:
                raise ParseError(path, _line_of(text, key), f"rc {key} must be positive, got {value}")
        pairs.append(RcPair(r, c))
    sources = data.get("sources", {})
    if not isinstance(sources, dict):
        raise ParseError(path, _line_of(text, "sources"), "sources must be a table of strings")
    return Cell(
        name=str(data.get("name", default_name)),
        capacity_ah=capacity,
        v_cutoff_v=v_cut,
        v_max_v=v_max,
        r0_ohm=r0,
        ocv_soc=tuple(socs),
        ocv_v=tuple(volts),
        rc=tuple(pairs),
        description=str(data.get("description", "")),
        sources={str(k): str(v) for k, v in sources.items()},
        path=path,
    )


def bundled_cells() -> list[str]:
    """Names of the cells shipped in ``testbed/data``."""
    return CELLS.names()


def load_cell(name_or_path: str | os.PathLike[str]) -> Cell:
    """A bundled cell by name (``phone-lco``) or a TOML file by path.

    Raises :class:`BadInputError` for an unknown name, :class:`ParseError` for a bad file.
    """
    text_name = str(name_or_path)
    p = Path(text_name)
    if p.suffix == ".toml" or os.sep in text_name or p.exists():
        from traces.csvio import read_text

        return parse_cell(read_text(p), str(p), default_name=p.stem)
    res = CELLS.path(text_name)
    if res is None:
        raise BadInputError(
            f"unknown cell {text_name!r}; bundled cells: {', '.join(bundled_cells()) or 'none'} (or pass a TOML path)"
        )
    return parse_cell(res.read_text(encoding="utf-8"), f"<bundled>/cell-{text_name}.toml", default_name=text_name)


def write_scaled_cell(name: str, factor: float, out_dir: Path) -> Path:
    """Write ``out_dir/cell-<name>-scaled.toml``: the bundled cell ``name`` (or a cell TOML path) with its
    capacity divided by ``factor`` (a small battery for demos and reproductions; resistances unchanged).

    Raises :class:`BadInputError` for an unknown cell, a factor ≤ 0, or a cell file without ``capacity_ah``.
    """
    if not factor > 0:
        raise BadInputError(f"cell scale factor must be > 0, got {factor}")
    bundled = CELLS.path(name)
    if bundled is None and Path(name).is_file():
        bundled, name = Path(name), Path(name).stem.removeprefix("cell-")
    if bundled is None:
        raise BadInputError(f"no bundled cell {name!r}; bundled cells: {', '.join(bundled_cells())}")
    text = bundled.read_text(encoding="utf-8")
    m = re.search(r"^capacity_ah = ([0-9.]+)$", text, flags=re.M)
    if m is None:
        raise BadInputError(f"bundled cell {name} has no capacity_ah line")
    cap = float(m.group(1)) / factor
    text = text.replace(m.group(0), f"capacity_ah = {cap:.6g}  # {name} capacity / {factor:g}")
    text = re.sub(r'^name = ".*"$', f'name = "{name}-scaled"', text, count=1, flags=re.M)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"cell-{name}-scaled.toml"
    path.write_text(f"# {name} with its capacity scaled by 1/{factor:g} (written by the testbed).\n" + text)
    return path
