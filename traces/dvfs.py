"""The DVFS trace format: ``t_s,domain,freq_khz``, one row per change, zero-order hold.

::

    # dvfs_trace v1; semantics=zero_order_hold; domains: policy0=cpu0-3, policy4=cpu4-7; duration_s=12.5
    t_s,domain,freq_khz
    0,policy0,1036800
    0,policy4,1900800
    0.512,policy4,1420800

A value holds until the next row of the same domain; ``duration_s`` (header or trailing comment) is
the end of the observation (default: the last row's time). Time is in seconds from 0, non-decreasing;
frequencies are positive kHz (``freq_mhz``/``freq_hz`` columns are converted). When the header
declares domains, or the caller passes ``known_domains``, a row for any other domain is an error.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from devices.errors import BadInputError, ParseError
from traces.csvio import check_time, format_number, parse_number, read_table, require_column, rows_text, write_text
from traces.domains import DomainMap, parse_domains

KIND = "dvfs_trace"
#: The highest frequency any reader or parser accepts (1 THz in kHz): above it a value is a corrupt field.
MAX_FREQ_KHZ = 1_000_000_000


def freq_problem(freq_khz: float) -> str | None:
    """Why ``freq_khz`` cannot be a frequency of a trace (``None`` when it can): not positive, or above
    :data:`MAX_FREQ_KHZ`. Every reader and parser of DVFS data checks with this one rule."""
    if not freq_khz > 0:
        return f"frequency must be positive, got {freq_khz:g} kHz"
    if freq_khz > MAX_FREQ_KHZ:
        return f"frequency {freq_khz:.6g} kHz is above {MAX_FREQ_KHZ} kHz (1 THz): not a clock frequency"
    if round(freq_khz) < 1:
        return f"frequency {freq_khz:g} kHz rounds to 0 kHz"
    return None


class DvfsEvent(NamedTuple):
    """From ``t_s`` on, ``domain`` runs at ``freq_khz`` (until its next event)."""

    t_s: float
    domain: str
    freq_khz: int


@dataclass
class DvfsTrace:
    """A list of frequency changes in time order, with the domains and the observed duration."""

    events: list[DvfsEvent]
    domains: DomainMap | None = None
    duration_s: float | None = None
    meta: dict[str, str] = field(default_factory=dict)

    def domain_names(self) -> list[str]:
        """Domains in order of first appearance (declared ones first)."""
        names = list(self.domains.names()) if self.domains else []
        for e in self.events:
            if e.domain not in names:
                names.append(e.domain)
        return names

    @property
    def end_s(self) -> float:
        """The end of the observation: ``duration_s`` if known, else the last event time."""
        last = self.events[-1].t_s if self.events else 0.0
        return max(self.duration_s or 0.0, last)

    def freq_at(self, domain: str, t_s: float) -> int | None:
        """The frequency of ``domain`` at ``t_s`` (zero-order hold); ``None`` before its first event."""
        value: int | None = None
        for e in self.events:
            if e.t_s > t_s:
                break
            if e.domain == domain:
                value = e.freq_khz
        return value

    def segments(self, domain: str) -> list[tuple[float, float, int]]:
        """``(start_s, end_s, freq_khz)`` holds of ``domain`` up to :attr:`end_s` (what a replay walks)."""
        mine = [e for e in self.events if e.domain == domain]
        ends = [e.t_s for e in mine[1:]] + [self.end_s]
        return [(e.t_s, end, e.freq_khz) for e, end in zip(mine, ends, strict=True) if end > e.t_s]

    def quantized(self, tables_khz: dict[str, list[int]]) -> DvfsTrace:
        """The trace as a board would run it: each frequency replaced by :func:`quantize_khz` against
        the domain's ``scaling_available_frequencies``; repeats that result are merged.

        Raises :class:`BadInputError` for a domain without a table.
        """
        out = []
        for e in self.events:
            table = tables_khz.get(e.domain)
            if not table:
                raise BadInputError(f"no frequency table for domain {e.domain!r}; have {', '.join(tables_khz)}")
            out.append(DvfsEvent(e.t_s, e.domain, quantize_khz(e.freq_khz, table)))
        return DvfsTrace(compress(out), self.domains, self.duration_s, {**self.meta, "quantized": "relation_l"})

    def residency_s(self) -> dict[str, dict[int, float]]:
        """Seconds spent at each frequency per domain, from its first event to :attr:`end_s`."""
        out: dict[str, dict[int, float]] = {}
        last: dict[str, DvfsEvent] = {}
        for e in self.events:
            prev = last.get(e.domain)
            if prev is not None:
                d = out.setdefault(e.domain, {})
                d[prev.freq_khz] = d.get(prev.freq_khz, 0.0) + (e.t_s - prev.t_s)
            last[e.domain] = e
        end = self.end_s
        for dom, prev in last.items():
            d = out.setdefault(dom, {})
            d[prev.freq_khz] = d.get(prev.freq_khz, 0.0) + (end - prev.t_s)
        return out


def quantize_khz(freq_khz: int, table_khz: list[int]) -> int:
    """The frequency the kernel picks for a request: the lowest listed one at or above ``freq_khz``
    (``CPUFREQ_RELATION_L``), or the highest listed one when the request is above them all."""
    ordered = sorted(table_khz)
    for f in ordered:
        if f >= freq_khz:
            return f
    return ordered[-1]


def compress(events: Iterable[DvfsEvent]) -> list[DvfsEvent]:
    """One row per change: of rows with the same time and domain keep the last (it supersedes the
    others), then drop rows that repeat the domain's current frequency. Input must be in time order."""
    latest: dict[tuple[float, str], DvfsEvent] = {}
    for e in events:
        latest.pop((e.t_s, e.domain), None)  # re-insert so the order follows the superseding row
        latest[(e.t_s, e.domain)] = e
    out: list[DvfsEvent] = []
    current: dict[str, int] = {}
    for e in sorted(latest.values(), key=lambda ev: ev.t_s):
        if current.get(e.domain) == e.freq_khz:
            continue
        current[e.domain] = e.freq_khz
        out.append(e)
    return out


def read_dvfs(
    path: str | os.PathLike[str], known_domains: Iterable[str] | None = None, text: str | None = None
) -> DvfsTrace:
    """Load and validate a DVFS trace CSV (``text`` when given, else the file at ``path``).

    Raises :class:`ParseError` for missing columns, unknown units, non-numeric/NaN values, negative or
    non-monotonic time, non-positive frequency, a domain not declared (header or ``known_domains``),
    or two rows for one domain at one time.
    """
    table = read_table(path, text)
    name = table.path
    if table.kind not in (None, KIND):
        raise ParseError(name, 1, f"this is a {table.kind} file, not a {KIND}")
    ti, tf = require_column(table, "t")
    fi, ff = require_column(table, "freq")
    di = table.index("domain")
    if di is None:
        raise ParseError(name, table.header_line, f"missing column 'domain' (header has {','.join(table.columns)})")
    domains: DomainMap | None = None
    if "domains" in table.meta:
        try:
            domains = parse_domains(table.meta["domains"])
        except BadInputError as exc:
            raise ParseError(name, table.meta_lines.get("domains"), f"header 'domains': {exc}") from None
    allowed: set[str] | None = None
    if domains is not None:
        allowed = set(domains.names())
    if known_domains is not None:
        known = set(known_domains)
        allowed = known if allowed is None else allowed & known
    events: list[DvfsEvent] = []
    times: list[float] = []
    seen: set[tuple[float, str]] = set()
    for row, line in zip(table.rows, table.lines, strict=True):
        t = parse_number(row[ti], name, line, table.columns[ti]) * tf
        dom = row[di].strip()
        if not dom:
            raise ParseError(name, line, "empty domain")
        if allowed is not None and dom not in allowed:
            listed = ", ".join(sorted(allowed)) or "none"
            raise ParseError(name, line, f"unknown domain {dom!r}; known domains: {listed}")
        f = parse_number(row[fi], name, line, table.columns[fi]) * ff
        problem = freq_problem(f)
        if problem is not None:
            raise ParseError(name, line, problem)
        if (t, dom) in seen:
            raise ParseError(name, line, f"second row for domain {dom!r} at t_s={t}")
        seen.add((t, dom))
        times.append(t)
        events.append(DvfsEvent(t, dom, round(f)))
    check_time(times, table.lines, name, strict=False)
    duration: float | None = None
    if "duration_s" in table.meta:
        dline = table.meta_lines.get("duration_s")
        duration = parse_number(table.meta["duration_s"], name, dline, "duration_s")
        if times and duration < times[-1]:
            raise ParseError(name, dline, f"duration_s={duration} is before the last row (t_s={times[-1]})")
    return DvfsTrace(events, domains, duration, dict(table.meta))


def write_dvfs(trace: DvfsTrace, path: str | os.PathLike[str], source: str | None = None) -> None:
    """Write ``trace`` in the canonical form (times rebased so the first row is at 0 is the caller's job)."""
    write_text(path, dvfs_text(trace, source))


def dvfs_text(trace: DvfsTrace, source: str | None = None) -> str:
    """The canonical CSV text of ``trace`` (what :func:`write_dvfs` writes)."""
    items = [f"{KIND} v1", "semantics=zero_order_hold"]
    if trace.domains is not None:
        items.append(f"domains: {trace.domains.to_text()}")
    if trace.duration_s is not None and not math.isnan(trace.duration_s):
        items.append(f"duration_s={format_number(trace.duration_s, 6)}")
    skip = {"semantics", "domains", "duration_s"}
    items.extend(f"{k}={v}" for k, v in trace.meta.items() if k not in skip)
    if source is not None and "source" not in trace.meta:
        items.append(f"source={source}")
    rows = ([format_number(e.t_s, 6), e.domain, str(e.freq_khz)] for e in trace.events)
    return rows_text("; ".join(items), ["t_s", "domain", "freq_khz"], rows)
