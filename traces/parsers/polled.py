"""Polled ``scaling_cur_freq``/``cpuinfo_cur_freq`` logs → DVFS trace (transitions on change).

Two layouts are accepted (whitespace- or comma-separated; ``#`` comments skipped):

- long: ``<t_s> <name> <freq_khz>`` per line, ``name`` a CPU (``cpu2``) or a domain (``policy4``);
- wide: a header ``t_s cpu0 cpu4`` (or ``time policy0 policy4``), then ``<t_s> <kHz> <kHz>`` rows, as
  ``echo "$(date +%s.%N) $(cat …/policy*/scaling_cur_freq)"`` writes after a header line.

CPU names are mapped to domains with ``domains`` (CPUs of one domain must agree at one time); without
a map a CPU stays its own domain. Times are rebased to the first sample; the last sample time is the
trace's ``duration_s``. Time units: seconds (a ``t_ms`` header column is converted).
"""

from __future__ import annotations

import math
import os
import re

from devices.errors import ParseError
from traces.csvio import read_text
from traces.domains import DomainMap
from traces.dvfs import DvfsEvent, DvfsTrace, compress, freq_problem
from traces.units import UnknownUnitError, factor, split_column

_CPU = re.compile(r"^cpu(\d+)$", re.IGNORECASE)
_TIME_NAMES = ("t", "time", "timestamp")


def _number(text: str, name: str, lineno: int, what: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise ParseError(name, lineno, f"{what} is not a number: {text[:40]!r}") from None
    if math.isnan(v) or math.isinf(v):
        raise ParseError(name, lineno, f"{what} is not finite: {text!r}")
    return v


def parse_polled(path: str | os.PathLike[str], domains: DomainMap | None = None) -> DvfsTrace:
    """Parse a polled frequency log (see the module text).

    Raises :class:`ParseError` for a malformed line, NaN, a non-positive frequency, time going
    backwards, a name in no domain of ``domains``, an unknown time unit, or CPUs of one domain
    disagreeing at the same time.
    """
    name = str(path)
    text = read_text(path)
    columns: list[str] | None = None
    t_factor = 1.0
    samples: list[tuple[float, str, int, int]] = []  # t, domain, kHz, line
    last_t: float | None = None
    for lineno, line in enumerate(text.splitlines(), start=1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        parts = [p for p in re.split(r"[\s,]+", s) if p]
        if not parts:
            raise ParseError(name, lineno, f"no fields in {s[:40]!r}")
        if columns is None and samples == [] and not _is_number(parts[0]):
            columns = parts
            head = parts[0].lower()
            try:
                parsed = split_column(head)
            except UnknownUnitError as exc:
                raise ParseError(name, lineno, str(exc)) from None
            if parsed is not None and parsed[0] == "t":
                t_factor = factor("t", parsed[1])
            elif head not in _TIME_NAMES:
                raise ParseError(name, lineno, f"the first column must be the time (t_s), found {parts[0]!r}")
            if len(columns) < 2:
                raise ParseError(name, lineno, "header names no CPU or domain column")
            continue
        t = _number(parts[0], name, lineno, "time") * t_factor
        if t < 0:
            raise ParseError(name, lineno, f"negative time {t}")
        if last_t is not None and t < last_t:
            raise ParseError(name, lineno, f"time {t} is earlier than the previous {last_t}")
        last_t = t
        if columns is not None:
            if len(parts) != len(columns):
                raise ParseError(
                    name, lineno, f"expected {len(columns)} fields ({' '.join(columns)}), found {len(parts)}"
                )
            pairs = list(zip(columns[1:], parts[1:], strict=True))
        else:
            if len(parts) != 3:
                raise ParseError(name, lineno, f"expected '<t_s> <cpu|domain> <freq_khz>', found {s[:60]!r}")
            pairs = [(parts[1], parts[2])]
        for who, value in pairs:
            f = _number(value, name, lineno, f"frequency of {who}")
            if f <= 0 or f != int(f):
                raise ParseError(name, lineno, f"frequency of {who} must be a positive integer kHz, got {value}")
            problem = freq_problem(f)
            if problem is not None:
                raise ParseError(name, lineno, f"{who}: {problem}")
            samples.append((t, _domain(who, domains, name, lineno), int(f), lineno))
    if not samples:
        raise ParseError(name, None, "no samples")
    agreed: dict[tuple[float, str], tuple[int, int]] = {}
    for t, dom, f, lineno in samples:
        prev = agreed.get((t, dom))
        if prev is not None and prev[0] != f:
            raise ParseError(
                name, lineno, f"CPUs of domain {dom!r} disagree at t={t}: {prev[0]} vs {f} kHz (line {prev[1]})"
            )
        agreed[(t, dom)] = (f, lineno)
    t0 = samples[0][0]
    events = compress(DvfsEvent(round(t - t0, 6), dom, f) for (t, dom), (f, _) in agreed.items())
    assert last_t is not None
    meta = {"source": "polled", "t0_source_s": f"{t0:.6f}"}
    return DvfsTrace(events, domains, round(last_t - t0, 6), meta)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _domain(who: str, domains: DomainMap | None, name: str, lineno: int) -> str:
    m = _CPU.match(who)
    if domains is None:
        return who.lower() if m else who
    if m is not None:
        dom = domains.domain_of(int(m.group(1)))
        if dom is None:
            raise ParseError(name, lineno, f"{who} is in no domain of --domains ({domains.to_text()})")
        return dom
    if who not in domains.domains:
        raise ParseError(name, lineno, f"unknown domain {who!r}; --domains has {domains.to_text()}")
    return who
