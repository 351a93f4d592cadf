"""rt3 runs exactly the pattern sets a search chose: ``strategy.search_result`` names a ``testbed search``
output (its directory or ``best.json``), and each level's choice is matched to the profile's pattern set of
the same sparsity (the search's ``best.rt3`` artifact, once profiled, carries these sets).

Failure modes: :class:`~devices.errors.BadInputError` for a missing or malformed result, a level the profile
lacks, or a chosen sparsity no profiled set has (the message says to profile the search's ``best.rt3``).
"""

from __future__ import annotations

import json
from pathlib import Path

from devices.errors import BadInputError
from traces.profile import ProfileTable

#: Sparsities closer than this are the same pattern set.
SPARSITY_TOL = 1e-6


def rt3_sets_from_search(result: str | Path, table: ProfileTable) -> dict[str, str]:
    """``{level: pattern set}`` of the search result at ``result`` on ``table`` (see the module text)."""
    path = Path(result)
    if path.is_dir():
        path = path / "best.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        choices = [(str(c["level"]), float(c["sparsity"])) for c in data["levels"]]
    except FileNotFoundError:
        raise BadInputError(f"strategy.search_result: {path}: no such search result") from None
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise BadInputError(f"strategy.search_result: {path}: not a search result ({exc})") from None
    out: dict[str, str] = {}
    for i, (level, sparsity) in enumerate(choices):
        if level not in table.levels:
            raise BadInputError(f"strategy.search_result: level {level!r} is not profiled ({', '.join(table.levels)})")
        rows = {ps: table.get(ps, level).sparsity for ps in table.pattern_sets}
        same = [ps for ps, sp in rows.items() if abs(sp - sparsity) <= SPARSITY_TOL]
        if not same:
            raise BadInputError(
                f"strategy.search_result: the search chose sparsity {sparsity:g} at {level} but no profiled pattern "
                f"set has it; profile the search's best.rt3 into the table"
            )
        preferred = [ps for ps in same if ps.startswith(f"L{i}-")]
        out[level] = (preferred or same)[0]
    return out
