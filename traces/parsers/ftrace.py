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

devlib/LISA write the frequencies at the start and end of a workload into the trace marker::

    shutils-4242  [002] ...1  1190.000000: tracing_mark_write: cpu_frequency_devlib: state=1200000 cpu_id=0

(``print:`` in ``trace-cmd report`` output); these count as ``cpu_frequency`` events, so a domain's trace
starts at its initial frequency rather than at its first change.
"""

from __future__ import annotations

import os
import re

from devices.errors import ParseError
from traces.csvio import read_text
from traces.domains import DomainMap
from traces.dvfs import DvfsEvent, DvfsTrace, compress, freq_problem

_EVENT = re.compile(
    r"^\s*(?P<task>.+?)-(?P<pid>\d+)\s+"
    r"(?:\(\s*(?P<tgid>\d+|-+)\s*\)\s+)?"
    r"\[(?P<cpu>\d+)\]\s+"
    r"(?:(?P<flags>[^\s\[\]]{4,6})\s+)?"
    r"(?P<ts>\d+(?:\.\d+)?):\s+"
    r"(?P<event>[\w:]+):\s*(?P<args>.*)$"
)
_ARGS = re.compile(r"^state=(?P<state>\d+)\s+cpu_id=(?P<cpu_id>\d+)\s*$")
_DEVLIB = re.compile(r"cpu_frequency_devlib:\s*state=(?P<state>\d+)\s+cpu_id=(?P<cpu_id>\d+)")
_MARKER_EVENTS = ("tracing_mark_write", "print", "bprint", "bputs")
#: Digits beyond these are a corrupt field, not a number (a CPU id or a kHz value).
_MAX_DIGITS = 12


def parse_ftrace(path: str | os.PathLike[str], domains: DomainMap | None = None) -> DvfsTrace:
    """Parse ``power:cpu_frequency`` events from an ftrace/systrace text file.

    Raises :class:`ParseError` for a malformed ``cpu_frequency`` line, a frequency that is not positive
    or above :data:`~traces.dvfs.MAX_FREQ_KHZ`, a timestamp earlier than the previous event line, a
    ``cpu_id`` in no domain of ``domains``, or a file without any ``cpu_frequency`` event.
    """
    return parse_ftrace_text(str(path), read_text(path), domains)


def _event_of(line: str, name: str, lineno: int) -> tuple[float, str, str] | None:
    """``(timestamp, event, args)`` of an ftrace event line, ``None`` for another line."""
    m = _EVENT.match(line)
    if m is None:
        return None
    ts = float(m.group("ts"))
    if ts != ts or ts in (float("inf"), float("-inf")):
        raise ParseError(name, lineno, f"timestamp {m.group('ts')[:30]} is not finite")
    return ts, m.group("event"), m.group("args")


def _state_cpu(state: str, cpu_id: str, name: str, lineno: int) -> tuple[int, int]:
    if len(state) > _MAX_DIGITS or len(cpu_id) > _MAX_DIGITS:
        raise ParseError(name, lineno, f"state={state[:20]} cpu_id={cpu_id[:20]} has too many digits to be real")
    f, cpu = int(state), int(cpu_id)
    problem = freq_problem(f)
    if problem is not None:
        raise ParseError(name, lineno, f"{problem} (state={f})")
    return f, cpu


def parse_ftrace_text(name: str, text: str, domains: DomainMap | None = None) -> DvfsTrace:
    """:func:`parse_ftrace` on ``text`` (what a file, ``trace-cmd report`` or a systrace HTML holds)."""
    raw: list[tuple[float, str, int]] = []
    last_ts: float | None = None
    first_ts: float | None = None
    for lineno, line in enumerate(text.splitlines(), start=1):
        if line.lstrip().startswith("#"):
            continue
        has_freq = "cpu_frequency" in line
        if not has_freq and ("]" not in line or ":" not in line):
            continue
        ev = _event_of(line, name, lineno)
        if ev is None:
            if has_freq and "cpu_frequency_devlib" not in line and "cpu_frequency:" in line:
                raise ParseError(name, lineno, "cpu_frequency line is not in ftrace format: " + line.strip()[:80])
            continue
        ts, event, args_text = ev
        if last_ts is not None and ts < last_ts:
            raise ParseError(name, lineno, f"timestamp {ts} is earlier than the previous {last_ts}")
        last_ts = ts
        if first_ts is None:
            first_ts = ts
        if event in ("cpu_frequency", "power:cpu_frequency"):
            args = _ARGS.match(args_text)
            if args is None:
                raise ParseError(
                    name, lineno, f"cpu_frequency arguments are not 'state=<kHz> cpu_id=<n>': {args_text[:60]!r}"
                )
        elif event.rpartition(":")[2] in _MARKER_EVENTS and "cpu_frequency_devlib" in args_text:
            args = _DEVLIB.search(args_text)
            if args is None:
                raise ParseError(
                    name, lineno, f"cpu_frequency_devlib marker is not 'state=<kHz> cpu_id=<n>': {args_text[:60]!r}"
                )
        else:
            continue  # another event (e.g. cpu_frequency_limits) only advances the end of the trace
        state, cpu = _state_cpu(args.group("state"), args.group("cpu_id"), name, lineno)
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
