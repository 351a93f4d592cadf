"""Jetson ``tegrastats`` logs → DVFS trace (CPU cores, GPU ``GR3D``, ``EMC``) or power trace (rails).

One line per sample, as ``tegrastats --interval <ms> --logfile FILE`` writes it, with or without the
leading ``MM-DD-YYYY HH:MM:SS`` JetPack 5+ prints::

    RAM 1180/3965MB ... CPU [30%@1036,33%@1036,off,26%@1036] EMC_FREQ 10%@1600 GR3D_FREQ 0%@76 ...
        POM_5V_IN 4520/4680 POM_5V_GPU 0/0 POM_5V_CPU 1078/1205              (Nano/TX, JetPack 4: mW)
    04-27-2026 15:00:54 RAM 779/7620MB ... GR3D_FREQ 0% ... VDD_IN 6626mW/6625mW VDD_SOC 2380mW/2380mW

CPU entries are ``load%@MHz`` per core (``off`` for an offline core: no event); TX1-era logs print
``cpu [17%,13%]@408``, one clock for all cores. ``GR3D_FREQ x%@MHz`` (or ``@[MHz]``) gives domain
``gpu``, ``EMC_FREQ x%@MHz`` domain ``emc``; a field without ``@`` has no clock to record. Rails are
``<name> <current>/<average>`` in mW; the power trace takes the instantaneous value of the total rail
(``VDD_IN`` or ``POM_5V_IN``, which already include the others), else the sum of all rails (recorded as
``total=sum_of_rails``). Without timestamps, samples are ``interval_s`` apart (tegrastats' default 1 s).
"""

from __future__ import annotations

import math
import os
import re

from devices.errors import BadInputError, ParseError
from traces.csvio import read_text
from traces.domains import DomainMap
from traces.dvfs import DvfsEvent, DvfsTrace, compress, freq_problem
from traces.power import PowerTrace
from traces.timefmt import TimeReader

DEFAULT_INTERVAL_S = 1.0
TOTAL_RAILS = ("VDD_IN", "POM_5V_IN")
_STAMP = re.compile(r"^\s*(\d{2}-\d{2}-\d{4} \d{2}:\d{2}:\d{2})\s+")
_CPU = re.compile(r"\bCPU \[(?P<cores>[^\]]*)\](?:@(?P<all>\d+))?", re.IGNORECASE)
_CLOCK = re.compile(r"\b(?P<name>GR3D_FREQ|GR3D|EMC_FREQ|EMC) \d+%@\[?(?P<mhz>\d+(?:\.\d+)?)")
_RAIL = re.compile(
    r"(?:^|\s)(?P<rail>[A-Z][A-Z0-9_]*) (?P<cur>\d+(?:\.\d+)?)(?:mW)?/(?P<avg>\d+(?:\.\d+)?)(?:mW)?"
    r"(?:/\d+(?:mW)?)?(?=\s|$)"
)
_NOT_RAILS = ("RAM", "SWAP", "IRAM", "LFB")
_MAX_MHZ = 100_000


def looks_like_tegrastats(line: str) -> bool:
    return bool(re.search(r"\bRAM \d+/\d+[kMG]B\b", line)) and (
        "CPU [" in line.upper() or "GR3D" in line or "EMC" in line
    )


def _samples(name: str, text: str, interval_s: float | None) -> list[tuple[float, str, int]]:
    """``(t_s from the first sample, line text after the stamp, line number)`` of every sample line."""
    reader = TimeReader()
    out: list[tuple[float, str, int]] = []
    stamped: bool | None = None
    period = interval_s if interval_s is not None else DEFAULT_INTERVAL_S
    if not (period > 0 and math.isfinite(period)):
        raise BadInputError(f"--interval-s must be a positive number of seconds, got {period:g}")
    t0: float | None = None
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not looks_like_tegrastats(line):
            raise ParseError(name, lineno, f"not a tegrastats line: {line.strip()[:60]!r}")
        m = _STAMP.match(line)
        if stamped is None:
            stamped = m is not None
        elif stamped != (m is not None):
            raise ParseError(name, lineno, "some lines have a timestamp and some do not")
        if m is not None and interval_s is None:
            try:
                t = reader.seconds(m.group(1))
            except ValueError as exc:
                raise ParseError(name, lineno, str(exc)) from None
            t0 = t if t0 is None else t0
            t -= t0
        else:
            t = len(out) * period
        if out and t <= out[-1][0]:
            raise ParseError(name, lineno, f"time is not increasing: {m.group(1) if m else t}")
        out.append((round(t, 6), line[m.end() :] if m else line, lineno))
    if not out:
        raise ParseError(name, None, "no tegrastats lines")
    return out


def _mhz_to_khz(text: str, name: str, lineno: int, what: str) -> int:
    mhz = float(text)
    if mhz > _MAX_MHZ:
        raise ParseError(name, lineno, f"{what} clock {text[:20]} MHz is not a real clock")
    khz = round(mhz * 1000)
    problem = freq_problem(khz)
    if problem is not None:
        raise ParseError(name, lineno, f"{what}: {problem}")
    return khz


def parse_tegrastats_dvfs(
    path: str | os.PathLike[str], domains: DomainMap | None = None, interval_s: float | None = None
) -> DvfsTrace:
    """The clocks of a tegrastats log as a DVFS trace (domains ``cpuN`` or from ``domains``, ``gpu``, ``emc``).

    Raises :class:`ParseError` for a line that is not tegrastats output, time going backwards, a clock that
    is not positive or real, CPUs of one domain disagreeing, or a log without any clock.
    """
    name = str(path)
    samples = _samples(name, read_text(path), interval_s)
    raw: list[DvfsEvent] = []
    for t, line, lineno in samples:
        at: dict[str, int] = {}
        cpu = _CPU.search(line)
        if cpu is not None:
            for k, entry in enumerate(p.strip() for p in cpu.group("cores").split(",")):
                if entry.lower() == "off" or not entry:
                    continue
                mhz = entry.partition("@")[2] or cpu.group("all")
                if not mhz:
                    continue
                try:
                    khz = _mhz_to_khz(mhz, name, lineno, f"CPU{k}")
                except ValueError:
                    raise ParseError(name, lineno, f"CPU{k} entry {entry[:20]!r} is not load%@MHz") from None
                dom = f"cpu{k}"
                if domains is not None:
                    found = domains.domain_of(k)
                    if found is None:
                        raise ParseError(name, lineno, f"CPU{k} is in no domain of --domains ({domains.to_text()})")
                    dom = found
                if dom in at and at[dom] != khz:
                    raise ParseError(name, lineno, f"CPUs of domain {dom!r} disagree: {at[dom]} vs {khz} kHz")
                at[dom] = khz
        for m in _CLOCK.finditer(line):
            dom = "gpu" if m.group("name").startswith("GR3D") else "emc"
            at[dom] = _mhz_to_khz(m.group("mhz"), name, lineno, m.group("name"))
        raw.extend(DvfsEvent(t, dom, khz) for dom, khz in at.items())
    if not raw:
        raise ParseError(name, None, "no CPU, GR3D or EMC clock (x%@MHz) in any tegrastats line")
    events = compress(raw)
    if domains is not None:  # the GPU and memory clocks are domains without CPUs
        extra = {d: () for d in ("gpu", "emc") if any(e.domain == d for e in events)}
        domains = DomainMap({**domains.domains, **extra})
    meta = {"source": "tegrastats"}
    if interval_s is not None or not _STAMP.match(read_text(path).lstrip("\n")):
        meta["interval_s"] = f"{interval_s or DEFAULT_INTERVAL_S:g}"
    return DvfsTrace(events, domains, samples[-1][0], meta)


def parse_tegrastats_power(path: str | os.PathLike[str], interval_s: float | None = None) -> PowerTrace:
    """The total rail of a tegrastats log as a power trace (W, instantaneous values).

    Raises :class:`ParseError` for a line that is not tegrastats output, a line without rails, or time
    going backwards.
    """
    name = str(path)
    samples = _samples(name, read_text(path), interval_s)
    times: list[float] = []
    powers: list[float] = []
    how = ""
    for t, line, lineno in samples:
        rails = {
            m.group("rail"): float(m.group("cur")) for m in _RAIL.finditer(line) if m.group("rail") not in _NOT_RAILS
        }
        if not rails:
            raise ParseError(name, lineno, "no power rails ('<RAIL> <mW>/<mW>') on this line")
        total = next((r for r in TOTAL_RAILS if r in rails), None)
        mw = rails[total] if total is not None else sum(rails.values())
        if mw > 1e7:
            raise ParseError(name, lineno, f"{mw:g} mW is not a board's power")
        how = total or "sum_of_rails"
        times.append(t)
        powers.append(mw / 1000.0)
    period = interval_s or DEFAULT_INTERVAL_S
    duration = times[-1] + (times[-1] - times[-2] if len(times) > 1 else period)
    meta = {"source": "tegrastats", "total": how, "values": "instantaneous"}
    return PowerTrace(times, powers, round(duration, 6), meta)  # type: ignore[arg-type]
