"""The grid of a sweep: ``--vary KEY=V1,V2,…`` (repeatable) × ``--seeds N`` over one experiment file; no Ray here.

KEY is a dotted path into the experiment TOML (``requests.period_ms``, ``battery.cell``, ``seed``); each value
is read as a TOML scalar (``200`` an integer, ``0.5`` a float, ``true`` a boolean, anything else a string;
``[1, 2]`` inline arrays are not supported: values are split at commas). The grid is the Cartesian product of
the ``--vary`` lists in the order given, the last key varying fastest, times ``N`` seeds (``seed``, ``seed+1``, …,
from the experiment's own seed) when ``--seeds`` is given.

Every cell's configuration is validated (:func:`~testbed.experiment.config.parse_experiment`, paths resolved
against the experiment file's directory) when the grid is built, before anything is written: a bad key or value
raises :class:`~devices.errors.BadInputError` naming the ``--vary`` option, the cell and the field.

A cell's directory name is ``cNNN-key=value-…`` (index first, so names stay unique after unsafe characters are
replaced by ``_``).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devices.errors import BadInputError
from testbed.experiment.config import ExperimentConfig, parse_experiment

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

Scalar = str | int | float | bool
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._=-]+")


@dataclass(frozen=True)
class Vary:
    """One ``--vary KEY=V1,V2`` option: the dotted key and its values, in order."""

    key: str
    values: tuple[Scalar, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "values": list(self.values)}


def parse_scalar(text: str) -> Scalar:
    """A value of ``--vary`` as TOML reads it (int, float, bool), else the text itself (stripped)."""
    t = text.strip()
    try:
        value = tomllib.loads(f"v = {t}")["v"]
    except tomllib.TOMLDecodeError:
        return t
    if isinstance(value, bool | int | float | str):
        return value
    return t


def parse_vary(option: str) -> Vary:
    """``KEY=V1,V2,…`` → :class:`Vary`; :class:`BadInputError` for a missing ``=``, a malformed key, an empty or
    repeated value."""
    key, sep, rest = option.partition("=")
    key = key.strip()
    if not sep:
        raise BadInputError(f"--vary {option!r}: expected KEY=V1,V2,… (e.g. requests.period_ms=100,200)")
    if not _KEY.match(key):
        raise BadInputError(f"--vary {option!r}: {key!r} is not a dotted key like requests.period_ms")
    parts = rest.split(",")
    if any(not p.strip() for p in parts):
        raise BadInputError(f"--vary {option!r}: empty value (give V1,V2,… without empty items)")
    values = tuple(parse_scalar(p) for p in parts)
    if len(set(map(repr, values))) != len(values):
        raise BadInputError(f"--vary {option!r}: a value is listed twice")
    return Vary(key, values)


def set_dotted(data: dict[str, Any], key: str, value: Scalar) -> dict[str, Any]:
    """A copy of ``data`` with ``key`` (dotted) set to ``value``; missing tables are created; :class:`BadInputError`
    when a prefix of ``key`` is a value, not a table."""
    out = json.loads(json.dumps(data))
    node = out
    parts = key.split(".")
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise BadInputError(f"--vary {key}: {'.'.join(parts[: i + 1])} is a value, not a table")
        node = child
    node[parts[-1]] = value
    return out


def get_dotted(data: dict[str, Any], key: str) -> Any:
    """The value at ``key`` (dotted) in ``data``, or None."""
    node: Any = data
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _slug(text: str) -> str:
    return _UNSAFE.sub("_", text).strip("_")[:60] or "_"


@dataclass(frozen=True)
class Cell:
    """One experiment of the grid: its index, its values per varied key (and its seed), its directory name and
    its validated configuration (``data`` is the TOML table it was validated from)."""

    index: int
    values: dict[str, Scalar]
    name: str
    data: dict[str, Any]
    config: ExperimentConfig

    def label(self) -> str:
        """``key=value, …`` for tables and messages."""
        return ", ".join(f"{k}={v}" for k, v in self.values.items())


@dataclass(frozen=True)
class Grid:
    """The cells of a sweep over ``experiment`` (see the module text)."""

    experiment: Path
    base: dict[str, Any]
    varies: tuple[Vary, ...]
    seeds: int | None
    cells: tuple[Cell, ...]

    @property
    def keys(self) -> list[str]:
        """The varied keys in order, ``seed`` last when ``--seeds`` is given."""
        return [v.key for v in self.varies] + (["seed"] if self.seeds is not None else [])

    def identity(self) -> dict[str, Any]:
        """What a rerun into the same directory must match: the experiment's content and the grid."""
        digest = hashlib.sha256(json.dumps(self.base, sort_keys=True).encode()).hexdigest()
        return {"experiment_sha256": digest, "vary": [v.to_dict() for v in self.varies], "seeds": self.seeds}


def build_grid(experiment: str | Path, varies: list[str], seeds: int | None = None) -> Grid:
    """Read the experiment file, parse the ``--vary`` options and validate every cell (see the module text)."""
    path = Path(experiment)
    if not path.is_file():
        raise BadInputError(f"{path}: no such experiment file")
    try:
        base = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise BadInputError(f"{path}: not valid TOML: {exc}") from None
    if not varies and seeds is None:
        raise BadInputError("a sweep needs at least one --vary KEY=V1,V2 or --seeds N")
    parsed = tuple(parse_vary(v) for v in varies)
    keys = [v.key for v in parsed]
    dup = sorted({k for k in keys if keys.count(k) > 1})
    if dup:
        raise BadInputError(f"--vary {dup[0]} given twice; list all its values in one option")
    if seeds is not None:
        if seeds < 1:
            raise BadInputError(f"--seeds must be ≥ 1, got {seeds}")
        if "seed" in keys:
            raise BadInputError("give either --seeds N or --vary seed=…, not both")
    first_seed = base.get("seed", 0)
    if not isinstance(first_seed, int):
        raise BadInputError(f"{path}: seed: must be an integer to use --seeds")
    seed_values: list[Scalar] = [first_seed + k for k in range(seeds)] if seeds is not None else []
    axes: list[tuple[str, tuple[Scalar, ...]]] = [(v.key, v.values) for v in parsed]
    if seeds is not None:
        axes.append(("seed", tuple(seed_values)))
    base_dir = str(path.parent.resolve())
    cells: list[Cell] = []
    for index, combo in enumerate(itertools.product(*(values for _, values in axes))):
        values = {k: v for (k, _), v in zip(axes, combo, strict=True)}
        data = base
        for k, v in values.items():
            data = set_dotted(data, k, v)
        label = ", ".join(f"{k}={v}" for k, v in values.items())
        try:
            cfg = parse_experiment(data, str(path), base_dir)
        except BadInputError as exc:
            raise BadInputError(f"sweep cell {index} ({label}): {exc}") from None
        name = f"c{index:03d}-" + "-".join(_slug(f"{k.rsplit('.', 1)[-1]}={v}") for k, v in values.items())
        cells.append(Cell(index, values, name, data, cfg))
    return Grid(path.resolve(), base, parsed, seeds, tuple(cells))
