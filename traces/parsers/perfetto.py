"""Perfetto protobuf traces (Android 10+ default) → DVFS trace, decoded from the published schema.

No ``trace_processor`` binary is needed (the ``perfetto`` package downloads one at run time): the wire
format is read directly. Fields used (``google/perfetto`` ``protos/perfetto/trace/…``): ``Trace.packet = 1``;
``TracePacket.ftrace_events = 1`` (an ``FtraceEventBundle``: ``cpu = 1``, ``event = 2``);
``FtraceEvent.timestamp = 1`` (ns) and ``cpu_frequency = 11`` (``CpuFrequencyFtraceEvent``: ``state = 1``
kHz, ``cpu_id = 2``). Every other field is skipped by its wire type. Compressed packets
(``compressed_packets = 50``, zlib) are inflated and read the same way.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterator

from devices.errors import ParseError
from traces.domains import DomainMap
from traces.dvfs import DvfsEvent, DvfsTrace, compress, freq_problem

_MAX_DEPTH = 4


class _Truncated(ValueError):
    pass


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = 0
    value = 0
    while True:
        if i >= len(buf):
            raise _Truncated("truncated varint")
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i
        shift += 7
        if shift > 63:
            raise _Truncated("varint longer than 10 bytes")


def fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """``(field number, wire type, value)`` of each field of one message; :class:`ValueError` if malformed."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        num, wire = key >> 3, key & 7
        if num == 0:
            raise _Truncated("field number 0")
        if wire == 0:
            v, i = _varint(buf, i)
            yield num, wire, v
        elif wire == 2:
            n, i = _varint(buf, i)
            if i + n > len(buf):
                raise _Truncated("length-delimited field runs past the end")
            yield num, wire, buf[i : i + n]
            i += n
        elif wire == 1:
            if i + 8 > len(buf):
                raise _Truncated("truncated fixed64")
            yield num, wire, buf[i : i + 8]
            i += 8
        elif wire == 5:
            if i + 4 > len(buf):
                raise _Truncated("truncated fixed32")
            yield num, wire, buf[i : i + 4]
            i += 4
        else:
            raise _Truncated(f"unsupported wire type {wire}")


def looks_like_perfetto(head: bytes) -> bool:
    """A trace starts with field 1 (packet), length-delimited: byte 0x0A, and decodes as such."""
    if not head.startswith(b"\x0a"):
        return False
    try:
        n, i = _varint(head, 1)
    except ValueError:
        return False
    return 0 < n < 1 << 26 and i + n <= len(head) + (1 << 26)


def _events(data: bytes, depth: int = 0) -> Iterator[tuple[int, int, int]]:
    """``(timestamp ns, cpu_id, state kHz)`` of each cpu_frequency event in a serialized Trace."""
    for num, wire, packet in fields(data):
        if num != 1 or wire != 2:
            continue
        assert isinstance(packet, bytes)
        for pnum, pwire, pval in fields(packet):
            if pnum == 50 and pwire == 2 and depth < _MAX_DEPTH:
                assert isinstance(pval, bytes)
                try:
                    yield from _events(zlib.decompress(pval), depth + 1)
                except zlib.error as exc:
                    raise _Truncated(f"compressed packets do not inflate: {exc}") from None
            if pnum != 1 or pwire != 2:
                continue
            assert isinstance(pval, bytes)
            for bnum, bwire, ev in fields(pval):
                if bnum != 2 or bwire != 2:
                    continue
                assert isinstance(ev, bytes)
                ts = None
                freq: bytes | None = None
                for enum_, ewire, evv in fields(ev):
                    if enum_ == 1 and ewire == 0:
                        ts = evv
                    elif enum_ == 11 and ewire == 2:
                        freq = evv  # type: ignore[assignment]
                if freq is None or not isinstance(ts, int):
                    continue
                state = cpu = None
                for fnum, fwire, fv in fields(freq):
                    if fnum == 1 and fwire == 0:
                        state = fv
                    elif fnum == 2 and fwire == 0:
                        cpu = fv
                if isinstance(state, int) and isinstance(cpu, int):
                    yield ts, cpu, state


def parse_perfetto(path: str | os.PathLike[str], domains: DomainMap | None = None) -> DvfsTrace:
    """The ``power/cpu_frequency`` ftrace events of a Perfetto trace → DVFS trace (times rebased to 0).

    Raises :class:`ParseError` for a file that is not a protobuf trace, a truncated message, a frequency
    that is not positive or real, a ``cpu_id`` in no domain, or a trace without cpu_frequency events.
    """
    name = str(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise ParseError(name, None, f"cannot read: {exc.strerror or exc}") from None
    raw: list[tuple[int, str, int]] = []
    try:
        for ts, cpu, state in _events(data):
            problem = freq_problem(state)
            if problem is not None:
                raise ParseError(name, None, f"cpu_frequency event at {ts} ns: {problem}")
            dom = f"cpu{cpu}"
            if domains is not None:
                found = domains.domain_of(cpu)
                if found is None:
                    raise ParseError(name, None, f"cpu_id={cpu} is in no domain of --domains ({domains.to_text()})")
                dom = found
            raw.append((ts, dom, state))
    except _Truncated as exc:
        raise ParseError(name, None, f"not a valid Perfetto protobuf trace: {exc}") from None
    if not raw:
        raise ParseError(
            name,
            None,
            "no ftrace cpu_frequency events; record with the linux.ftrace data source and power/cpu_frequency",
        )
    raw.sort(key=lambda r: r[0])
    t0 = raw[0][0]
    events = compress(DvfsEvent(round((ts - t0) / 1e9, 6), dom, f) for ts, dom, f in raw)
    meta = {"source": "perfetto", "t0_source_s": f"{t0 / 1e9:.9f}"}
    return DvfsTrace(events, domains, events[-1].t_s, meta)
