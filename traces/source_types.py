"""The types of the source-format registry: :class:`ParseOptions`, :class:`SourceFormat` and :data:`SOURCES`.

Kept apart from :mod:`traces.sources` (detection and loading) so the parsers' registration module can
import them without an import cycle.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Union

from devices.registry import Registry
from traces.battery import BatteryTrace
from traces.domains import DomainMap
from traces.dvfs import DvfsTrace
from traces.power import PowerTrace

Trace = Union[DvfsTrace, BatteryTrace, PowerTrace]  # noqa: UP007 - a runtime alias on Python 3.10


@dataclass(frozen=True)
class ParseOptions:
    """Everything a parser may need besides the files; each parser uses the fields that apply to it.

    ``interval_s`` is the sampling period of a log without timestamps (tegrastats) or the time between two
    snapshots (time-in-state pairs); ``columns`` names the columns of a header-less CSV; ``time_format``
    (strftime) and ``tz`` read date-time stamps; ``kind`` picks the output of a source that has two
    (``dvfs``/``power`` for tegrastats, ``battery``/``power`` for CSV).
    """

    domains: DomainMap | None = None
    mode: str = "split"
    sign: str = "auto"
    column_map: str | None = None
    kind: str | None = None
    columns: tuple[str, ...] | None = None
    time_format: str | None = None
    tz: str | None = None
    interval_s: float | None = None


@dataclass(frozen=True)
class SourceFormat:
    """One kind of source file: its name, what it produces, a detector and a parser."""

    name: str
    produces: str
    summary: str
    sniff: Callable[[bytes], float]
    parse: Callable[[Sequence[Path], ParseOptions], Trace]
    max_files: int = 1


SOURCES: Registry[SourceFormat] = Registry("trace source format")


def register(fmt: SourceFormat) -> SourceFormat:
    """Add ``fmt`` to :data:`SOURCES` (its :attr:`~SourceFormat.summary` is listed by ``--help``)."""
    return SOURCES.register(fmt.name, fmt, fmt.summary)
