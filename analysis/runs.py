"""Load a run store (one SQLite file per run) for analysis, through the run store's read-only reader.

Works on runs of either fidelity level (``sim`` or ``hil``): both write the same tables. A missing or foreign
file, or a run with no finished strategy, raises :class:`~devices.errors.BadInputError` (one line).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from devices.errors import BadInputError
from testbed.runstore.reader import RunReader, StrategyResult


@dataclass
class RunData:
    """A run's reader, its per-strategy results and its tables, loaded lazily as DataFrames."""

    reader: RunReader
    results: dict[str, StrategyResult]
    _cache: dict[str, pd.DataFrame] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return self.reader.path

    @property
    def run_id(self) -> str:
        return self.reader.run_id

    @property
    def fidelity(self) -> str:
        return self.reader.fidelity

    @property
    def name(self) -> str:
        return str(self.reader.config.get("name") or self.path.parent.name)

    @property
    def mode(self) -> str:
        return str(self.reader.config.get("mode") or self.reader.fidelity)

    @property
    def battery_model(self) -> str:
        return str((self.reader.config.get("battery") or {}).get("model") or "?")

    @property
    def deadline_ms(self) -> float | None:
        d = (self.reader.config.get("requests") or {}).get("deadline_ms")
        return float(d) if d is not None else None

    def table(self, name: str, strategy: str | None = None) -> pd.DataFrame:
        """A table as a DataFrame (all strategies, or one)."""
        if name not in self._cache:
            self._cache[name] = self.reader.frame(name)
        df = self._cache[name]
        if strategy is not None and "strategy" in df.columns:
            return df[df["strategy"] == strategy].reset_index(drop=True)
        return df

    def close(self) -> None:
        self.reader.close()


def load_run(path: str | Path) -> RunData:
    """Open a run read-only; :class:`BadInputError` if it is not a run store or no strategy has finished."""
    reader = RunReader.open(path)
    try:
        stored = reader.results()
    except BadInputError:
        reader.close()
        raise
    results = {s: r for s, r in stored.items() if isinstance(r, StrategyResult)}
    if not results:
        reader.close()
        if stored:
            raise BadInputError(f"{reader.path}: a search run, not an experiment run (pass it as --search-log)")
        raise BadInputError(
            f"{reader.path}: the run has no finished strategy yet (resume it with `testbed run --resume`)"
        )
    return RunData(reader, results)
