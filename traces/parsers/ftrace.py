"""ftrace / systrace text with ``power:cpu_frequency`` events → DVFS trace.

Line forms (``Documentation/trace/ftrace.rst``; systrace adds the TGID column)::

    cat-5235  [002] ..s.  1177.681723: cpu_frequency: state=2900000 cpu_id=2
    kworker/0:1-1855  ( 1855) [000] d..2  1234.500000: cpu_frequency: state=1744000 cpu_id=2
    <...>-12  (-----) [001] ....  1234.6: cpu_frequency: state=600000 cpu_id=4

``state`` is kHz and belongs to ``cpu_id`` — not to the CPU in brackets, which only logged the event.
CPUs are mapped to frequency domains with a :class:`~traces.domains.DomainMap`; without one, each CPU
is its own domain ``cpuN``. The event fires only on a change, so a domain's trace starts at its first
event. Times are rebased so the first event is at 0; ``duration_s`` is the last timestamped line.
Other events and non-event lines (comments, systrace HTML) are skipped; a ``cpu_frequency`` line that
does not parse is an error.
"""

from __future__ import annotations

import os
import re

from devices.errors import ParseError
from traces.csvio import read_text
from traces.domains import DomainMap
from traces.dvfs import DvfsEvent, DvfsTrace, compress

_EVENT = re.compile(
    r"^\s*(?P<task>.+?)-(?P<pid>\d+)\s+"
    r"(?:\(\s*(?P<tgid>\d+|-+)\s*\)\s+)?"
    r"\[(?P<cpu>\d+)\]\s+"
    r"(?:(?P<flags>[^\s\[\]]{4,6})\s+)?"
    r"(?P<ts>\d+(?:\.\d+)?):\s+"
    r"(?P<event>[\w:]+):\s*(?P<args>.*)$"
)
_ARGS = re.compile(r"^state=(?P<state>\d+)\s+cpu_id=(?P<cpu_id>\d+)\s*$")


def parse_ftrace(path: str | os.PathLike[str], domains: DomainMap | None = None) -> DvfsTrace:
    """Parse ``power:cpu_frequency`` events from an ftrace/systrace text file.

    Raises :class:`ParseError` for a malformed ``cpu_frequency`` line, a zero frequency, a timestamp
    earlier than the previous event line, a ``cpu_id`` in no domain of ``domains``, or a file without
    any ``cpu_frequency`` event.
    """
    name = str(path)
    text = read_text(path)
    raw: list[tuple[float, str, int]] = []
    last_ts: float | None = None
    first_ts: float | None = None
    for lineno, line in enumerate(text.splitlines(), start=1):
        if line.lstrip().startswith("#"):
            continue
        if "cpu_frequency" not in line:
            m = _EVENT.match(line) if "]" in line and ":" in line else None
            if m is not None:  # any event line advances the observed end of the trace
                ts = float(m.group("ts"))
                if last_ts is not None and ts < last_ts:
                    raise ParseError(name, lineno, f"timestamp {ts} is earlier than the previous {last_ts}")
                last_ts = ts
                if first_ts is None:
                    first_ts = ts
            continue
        m = _EVENT.match(line)
        if m is None:
            raise ParseError(name, lineno, "cpu_frequency line is not in ftrace format: " + line.strip()[:80])
        if m.group("event") not in ("cpu_frequency", "power:cpu_frequency"):
            continue  # e.g. cpu_frequency_limits
        args = _ARGS.match(m.group("args"))
        if args is None:
            raise ParseError(
                name, lineno, f"cpu_frequency arguments are not 'state=<kHz> cpu_id=<n>': {m.group('args')[:60]!r}"
            )
        ts = float(m.group("ts"))
        if last_ts is not None and ts < last_ts:
            raise ParseError(name, lineno, f"timestamp {ts} is earlier than the previous {last_ts}")
        last_ts = ts
        state = int(args.group("state"))
        cpu = int(args.group("cpu_id"))
        if state <= 0:
            raise ParseError(name, lineno, f"frequency must be positive, got state={state}")
        if domains is not None:
            dom = domains.domain_of(cpu)
            if dom is None:
                raise ParseError(name, lineno, f"cpu_id={cpu} is in no domain of --domains ({domains.to_text()})")
        else:
            dom = f"cpu{cpu}"
        raw.append((ts, dom, state))
    if not raw:
        raise ParseError(
            name,
            None,
            "no power:cpu_frequency events found (enable them with "
            "'echo 1 > /sys/kernel/tracing/events/power/cpu_frequency/enable')",
        )
    t0 = raw[0][0]
    events = compress(DvfsEvent(round(ts - t0, 6), dom, f) for ts, dom, f in raw)
    end = (last_ts - t0) if last_ts is not None else events[-1].t_s
    meta = {"source": "ftrace", "t0_source_s": f"{t0:.6f}"}
    return DvfsTrace(events, domains, round(end, 6), meta)
