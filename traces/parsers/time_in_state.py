"""cpufreq ``stats/time_in_state`` snapshots → DVFS trace.

``time_in_state`` is a cumulative histogram: lines ``<freq kHz> <ticks>``, ticks in 10 ms units
(USER_HZ, ``Documentation/cpu-freq/cpufreq-stats.rst``). A trace needs snapshots taken at known times;
each snapshot starts with a marker line giving the time and the domain, as a shell loop writes it::

    === 1700000000.25 policy0
    600000 1200
    1500000 340

(also ``# t_s=12.5 domain=policy0``). Between two snapshots of a domain only the residency per frequency
is known, not the order. ``mode="split"`` (default) lays the interval out as consecutive segments, one
per frequency in descending order, each as long as its share of the residency, so time-at-frequency is
preserved exactly; ``mode="dominant"`` holds the most-used frequency for the whole interval. The result
records ``order=synthetic`` in its header. Times are rebased to the first snapshot.
"""

from __future__ import annotations

import itertools
import os
import re
from dataclasses import dataclass
from pathlib import Path

from devices.errors import BadInputError, ParseError
from traces.csvio import read_text
from traces.domains import DomainMap
from traces.dvfs import MAX_FREQ_KHZ, DvfsEvent, DvfsTrace, compress

#: Length of one time_in_state tick in seconds (USER_HZ = 100).
TICK_S = 0.01
#: The kernel's counters are u64.
MAX_TICKS = 2**64 - 1
MODES = ("split", "dominant")
_MARK = re.compile(r"^\s*(?:=+|#|@)\s*(?P<body>.*?)\s*=*\s*$")


@dataclass
class _Snapshot:
    t_s: float
    domain: str
    counts: dict[int, int]
    line: int


def _parse_marker(body: str, name: str, lineno: int) -> tuple[float, str] | None:
    tokens = body.replace(",", " ").split()
    t: float | None = None
    dom: str | None = None
    positional: list[str] = []
    for tok in tokens:
        if "=" in tok:
            k, _, v = tok.partition("=")
            if k.lower() in ("t", "t_s", "time", "ts"):
                try:
                    t = float(v)
                except ValueError:
                    raise ParseError(name, lineno, f"snapshot time is not a number: {v!r}") from None
            elif k.lower() in ("domain", "policy"):
                dom = v
        else:
            positional.append(tok)
    if t is None and positional:
        try:
            t = float(positional.pop(0))
        except ValueError:
            return None  # an ordinary comment
    if dom is None and positional:
        dom = positional.pop(0)
    if t is None:
        return None
    if t != t or t in (float("inf"), float("-inf")):
        raise ParseError(name, lineno, f"snapshot time is not finite: {t}")
    return t, dom or "policy0"


def _read_snapshots(name: str, text: str, line_offset: int = 0) -> list[_Snapshot]:
    snaps: list[_Snapshot] = []
    current: _Snapshot | None = None
    for lineno, line in enumerate(text.splitlines(), start=1 + line_offset):
        if not line.strip():
            continue
        m = _MARK.match(line)
        if m is not None:
            marker = _parse_marker(m.group("body"), name, lineno)
            if marker is not None:
                current = _Snapshot(marker[0], marker[1], {}, lineno)
                snaps.append(current)
            continue
        parts = line.split()
        if len(parts) != 2:
            raise ParseError(name, lineno, f"expected '<freq kHz> <ticks>', found {line.strip()[:60]!r}")
        if current is None:
            raise ParseError(
                name,
                lineno,
                "time_in_state line before any snapshot marker; time_in_state is cumulative, so each snapshot "
                "needs a line like '=== <t_s> <domain>' giving when it was taken (or convert two raw snapshots: "
                "BEFORE AFTER --interval-s N)",
            )
        try:
            freq, ticks = int(parts[0]), int(parts[1])
        except ValueError:
            raise ParseError(name, lineno, f"not integers: {line.strip()[:60]!r}") from None
        if freq <= 0:
            raise ParseError(name, lineno, f"frequency must be positive, got {freq}")
        if ticks < 0:
            raise ParseError(name, lineno, f"negative tick count {ticks}")
        if ticks > MAX_TICKS or freq > MAX_FREQ_KHZ:
            raise ParseError(name, lineno, f"value too large for a cpufreq counter: {line.strip()[:60]!r}")
        if freq in current.counts:
            raise ParseError(name, lineno, f"frequency {freq} listed twice in one snapshot")
        current.counts[freq] = ticks
    return snaps


def parse_time_in_state(
    path: str | os.PathLike[str],
    domains: DomainMap | None = None,
    mode: str = "split",
    tick_s: float = TICK_S,
) -> DvfsTrace:
    """Turn timestamped ``time_in_state`` snapshots into a DVFS trace (see the module text).

    Raises :class:`ParseError` for lines that are not ``<kHz> <ticks>``, a snapshot without a marker,
    times that go backwards within a domain, a counter that decreases (stats reset), a domain not in
    ``domains``, or fewer than two snapshots of any domain.
    """
    if mode not in MODES:
        raise ParseError(path, None, f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
    return _parse_snapshot_text(str(path), read_text(path), domains, mode, tick_s)


def _parse_snapshot_text(name: str, text: str, domains: DomainMap | None, mode: str, tick_s: float) -> DvfsTrace:
    snaps = _read_snapshots(name, text)
    by_domain: dict[str, list[_Snapshot]] = {}
    for s in snaps:
        if domains is not None and s.domain not in domains.domains:
            raise ParseError(name, s.line, f"unknown domain {s.domain!r}; --domains has {domains.to_text()}")
        if not s.counts:
            raise ParseError(name, s.line, "snapshot without any '<freq kHz> <ticks>' line")
        by_domain.setdefault(s.domain, []).append(s)
    if not any(len(v) >= 2 for v in by_domain.values()):
        raise ParseError(name, None, "need at least two timestamped snapshots of one domain to make a trace")
    t0 = min(s.t_s for s in snaps)
    raw: list[DvfsEvent] = []
    end = 0.0
    for dom, seq in by_domain.items():
        for a, b in itertools.pairwise(seq):
            if b.t_s <= a.t_s:
                raise ParseError(name, b.line, f"snapshot time {b.t_s} is not after the previous {a.t_s} ({dom})")
            delta: dict[int, int] = {}
            for f, ticks in b.counts.items():
                d = ticks - a.counts.get(f, 0)
                if d < 0:
                    raise ParseError(
                        name, b.line, f"time_in_state for {f} kHz decreased ({a.counts[f]} → {ticks}): stats reset?"
                    )
                if d > 0:
                    delta[f] = d
            busy_s = sum(delta.values()) * tick_s
            if busy_s > 1.5 * (b.t_s - a.t_s) + 2 * tick_s:
                raise ParseError(
                    name,
                    b.line,
                    f"{busy_s:g} s of residency in a {b.t_s - a.t_s:g} s interval: are the snapshot times in "
                    "seconds, and is the tick 10 ms?",
                )
            raw.extend(_interval_events(dom, a.t_s - t0, b.t_s - t0, delta, mode))
            end = max(end, b.t_s - t0)
    raw.sort(key=lambda e: e.t_s)
    events = compress(raw)
    meta = {
        "source": "time_in_state",
        "order": "synthetic" if mode == "split" else "dominant",
        "tick_s": f"{tick_s:g}",
        "t0_source_s": f"{t0:.6f}",
    }
    return DvfsTrace(events, domains, round(end, 6), meta)


def _interval_events(dom: str, start: float, stop: float, delta: dict[int, int], mode: str) -> list[DvfsEvent]:
    if not delta:
        return []  # too short to register a tick: the previous frequency holds
    if mode == "dominant":
        best = max(delta.items(), key=lambda kv: (kv[1], kv[0]))[0]
        return [DvfsEvent(round(start, 6), dom, best)]
    total = sum(delta.values())
    out: list[DvfsEvent] = []
    t = start
    for f in sorted(delta, reverse=True):
        out.append(DvfsEvent(round(t, 6), dom, f))
        t += (stop - start) * delta[f] / total
    return out


_PATH_DOMAIN = re.compile(r"(policy\d+|cpu\d+)", re.IGNORECASE)


def _raw_counts(path: Path) -> tuple[dict[int, int], int]:
    """A raw ``time_in_state`` file (no marker) → ``{kHz: ticks}`` and the line of its first row."""
    name = str(path)
    snaps = _read_snapshots(name, "=== 0 x\n" + read_text(path), line_offset=-1)
    if len(snaps) > 1:
        raise ParseError(name, snaps[1].line, "this file has snapshot markers; convert it alone (--from time-in-state)")
    counts = snaps[0].counts
    if not counts:
        raise ParseError(name, None, "no '<freq kHz> <ticks>' lines (is this a stats/time_in_state file?)")
    return counts, 1


def _domain_from_path(path: Path, domains: DomainMap | None) -> str:
    found = _PATH_DOMAIN.findall(str(path))
    label = found[-1].lower() if found else "policy0"
    if domains is None:
        return label
    if label.startswith("cpu"):
        dom = domains.domain_of(int(label[3:]))
        if dom is not None:
            return dom
    elif label in domains.domains:
        return label
    if len(domains.domains) == 1:
        return domains.names()[0]
    raise ParseError(path, None, f"cannot tell the domain of {path.name} ({label}); --domains has {domains.to_text()}")


def parse_time_in_state_pair(
    before: str | os.PathLike[str],
    after: str | os.PathLike[str],
    interval_s: float | None,
    domains: DomainMap | None = None,
    mode: str = "split",
    tick_s: float = TICK_S,
) -> DvfsTrace:
    """Two raw ``time_in_state`` snapshots taken ``interval_s`` apart (as Workload Automation saves them,
    before and after a workload) → a DVFS trace of that interval.

    The domain comes from the path (``…/policy4/stats/time_in_state`` or ``…/cpu4/…`` mapped through
    ``domains``; ``policy0`` otherwise). Without ``interval_s`` the residency itself gives the length.
    Raises :class:`ParseError` for lines that are not ``<kHz> <ticks>``, a decreasing counter, a residency
    longer than the interval, or no change at all; :class:`BadInputError` for a non-positive interval.
    """
    b, a = Path(before), Path(after)
    counts_b, _ = _raw_counts(b)
    counts_a, _ = _raw_counts(a)
    if interval_s is not None and not (interval_s > 0 and interval_s < 1e12):
        raise BadInputError(f"--interval-s must be a positive number of seconds, got {interval_s:g}")
    dom = _domain_from_path(a, domains)
    delta_ticks = sum(max(0, counts_a.get(f, 0) - counts_b.get(f, 0)) for f in counts_a)
    length = interval_s if interval_s is not None else delta_ticks * tick_s
    if length <= 0:
        raise ParseError(a, None, "no residency changed between the two snapshots; give --interval-s N")
    text = (
        f"=== 0 {dom}\n"
        + "\n".join(f"{f} {c}" for f, c in counts_b.items())
        + f"\n=== {length!r} {dom}\n"
        + "\n".join(f"{f} {c}" for f, c in counts_a.items())
        + "\n"
    )
    trace = _parse_snapshot_text(str(a), text, domains, mode, tick_s)
    trace.meta["source"] = "time_in_state_pair"
    trace.meta["interval_s"] = f"{length:g}"
    return trace
