"""Joulescope ``.jls`` recordings → power trace, through the optional ``pyjls`` package.

A JLS v2 file holds fixed-rate signals; the power trace is the ``power`` signal (W), or ``current`` ×
``voltage`` when there is no power signal, averaged over blocks so that at most :data:`MAX_ROWS` rows are
written (the block length is recorded as ``block_s``). ``pyjls`` is in the ``controller`` extra.
"""

from __future__ import annotations

import math
import os

import numpy as np

from devices.errors import BadInputError, ParseError
from traces.power import PowerTrace

MAGIC = b"jlsfmt\r\n \n \x1a  \xb2\x1c"
MAX_ROWS = 100_000
_CHUNK = 1_000_000


def looks_like_jls(head: bytes) -> bool:
    """A JLS v2 file starts with ``jlsfmt\\r\\n \\n \\x1a  \\xb2\\x1c`` (pyjls ``jls/format.h``)."""
    return head.startswith(MAGIC)


def _read_signal(reader: object, sid: int, length: int, block: int) -> np.ndarray:
    out = []
    fsr = reader.fsr  # type: ignore[attr-defined]
    for start in range(0, length - length % block, _CHUNK - _CHUNK % block):
        n = min(_CHUNK - _CHUNK % block, length - length % block - start)
        data = np.asarray(fsr(sid, start, n), dtype=float)
        out.append(data.reshape(-1, block).mean(axis=1))
    return np.concatenate(out) if out else np.zeros(0)


def parse_jls(path: str | os.PathLike[str]) -> PowerTrace:
    """The power of a Joulescope recording as a power trace.

    Raises :class:`BadInputError` when ``pyjls`` is not installed, :class:`ParseError` for a file pyjls
    cannot open, one without power or current and voltage signals, or negative/non-finite power.
    """
    name = str(path)
    try:
        import pyjls
    except ImportError:
        raise BadInputError(f"{name}: reading .jls files needs pyjls: pip install 'rt3-testbed[controller]'") from None
    try:
        reader = pyjls.Reader(os.fspath(path))
    except Exception as exc:  # pyjls raises RuntimeError with the C library's code
        raise ParseError(name, None, f"not a readable JLS file: {str(exc)[:100]}") from None
    try:
        by_name = {s.name.lower(): s for s in reader.signals.values() if getattr(s, "signal_type", 0) == 0}
        if "power" not in by_name and not ("current" in by_name and "voltage" in by_name):
            raise ParseError(
                name, None, f"no power, or current and voltage, signal (has {', '.join(by_name) or 'none'})"
            )
        ref = by_name.get("power") or by_name["current"]
        length = int(ref.length)
        rate = float(ref.sample_rate)
        if length < 1 or not (rate > 0 and math.isfinite(rate)):
            raise ParseError(name, None, "the signal has no samples")
        block = max(1, math.ceil(length / MAX_ROWS), math.ceil(1e-5 * rate))
        if "power" in by_name:
            p = _read_signal(reader, by_name["power"].signal_id, length, block)
        else:
            n = min(length, int(by_name["voltage"].length))
            i = _read_signal(reader, by_name["current"].signal_id, n, block)
            v = _read_signal(reader, by_name["voltage"].signal_id, n, block)
            p = i * v
    finally:
        reader.close()
    if len(p) == 0:
        raise ParseError(name, None, f"fewer samples than one block of {block}")
    if not np.all(np.isfinite(p)):
        raise ParseError(name, None, "the power holds NaN or infinite values (a gap in the recording?)")
    p = np.maximum(p, 0.0) if np.all(p > -1e-3) else p
    if np.any(p < 0):
        raise ParseError(name, None, f"negative power {float(p.min()):g} W: is the current reversed?")
    block_s = block / rate
    t = np.round(np.arange(len(p)) * block_s, 6)
    meta = {"source": "joulescope", "sample_rate_hz": f"{rate:g}", "block_s": f"{block_s:g}"}
    return PowerTrace(t, p, round(len(p) * block_s, 6), meta)
