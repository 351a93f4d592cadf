"""The RuiDeng UM24C / UM25C / UM34C serial protocol: 130-byte big-endian frames, encode and decode.

The host sends the single byte ``0xF0``; the meter answers with one 130-byte frame (layout from
``rfinnie/rdserialtool`` and ``sigrok libsigrok src/hardware/rdtech-um``):

====== ==== ======================================================================
offset len  field (big-endian, unsigned)
====== ==== ======================================================================
0      2    model ID: UM24C ``0x0963``, UM25C ``0x09C9``, UM34C ``0x0D4C``
2      2    voltage ×0.01 V (UM25C ×0.001 V)
4      2    current ×0.001 A (UM25C ×0.0001 A)
6      4    power ×0.001 W
10/12  2+2  temperature °C / °F
14     2    selected data group 0–9
16     80   10 × (u32 mAh, u32 mWh)
96/98  2+2  D+ / D− ×0.01 V
100    2    charging mode
102    4+4  recorded mAh / mWh (threshold-gated)
110    2    record threshold ×0.01 A
112    4    recorded time s
116    2    recording flag
118    2+2  screen timeout min, brightness
122    4    load resistance ×0.1 Ω
126    2    current screen
128    2    UM24C/UM25C: end marker ``0xFFF1``; UM34C: byte 129 = XOR of the bytes at
            :data:`UM34C_CHECKSUM_OFFSETS`
====== ==== ======================================================================

:func:`extract_frame` finds the next valid frame in a byte buffer, dropping garbage one byte at a time
as sigrok does (resynchronisation). Decoders raise only :class:`UMProtocolError` (a
:class:`~devices.errors.HardwareError`).

The UM24C/UM25C frame has no checksum and the UM34C's covers only 32 of its bytes, so a frame with flipped
bits usually still *looks* valid. :func:`implausible` applies the checks a careful instrument makes before
a reading is believed: power equals voltage × current within the quantisation of the three values, the
load resistance equals voltage / current, every value lies inside the meter's range, the °F reading matches
the °C one, and the settings fields hold values the meter can have. The meter drops a reading that fails and
asks again (:class:`~devices.meters.um.UMMeter` counts them).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from devices.errors import HardwareError

FRAME_LEN = 130
REQUEST = b"\xf0"
END_MARKER = 0xFFF1
_FMT = ">HHHIHHH20IHHHIIHIHHHIHH"
assert struct.calcsize(_FMT) == FRAME_LEN

UM34C_CHECKSUM_OFFSETS = (
    1, 3, 7, 9, 15, 17, 19, 23, 31, 39, 41, 45, 49, 53, 55, 57,
    59, 63, 67, 69, 73, 79, 83, 89, 97, 99, 109, 111, 113, 119, 121, 127,
)  # fmt: skip


class UMProtocolError(HardwareError):
    """A frame that is not a valid frame of the expected meter model."""


@dataclass(frozen=True)
class UMModel:
    name: str
    model_id: int
    volt_lsb_v: float
    curr_lsb_a: float
    checksummed: bool
    #: The meter's measuring range (datasheet maxima with a little headroom).
    max_voltage_v: float = 24.5
    max_current_a: float = 5.5

    @property
    def id_bytes(self) -> bytes:
        return struct.pack(">H", self.model_id)


MODELS: dict[str, UMModel] = {
    "um24c": UMModel("um24c", 0x0963, 0.01, 0.001, False, 24.5, 3.5),
    "um25c": UMModel("um25c", 0x09C9, 0.001, 0.0001, False, 24.5, 5.5),
    "um34c": UMModel("um34c", 0x0D4C, 0.01, 0.001, True, 36.5, 4.5),
}
_BY_ID = {m.model_id: m for m in MODELS.values()}


@dataclass
class UMReading:
    """Decoded frame. Units in the names; groups hold cumulative mAh / mWh per data group."""

    model: str
    voltage_v: float
    current_a: float
    power_w: float
    temp_c: int = 25
    temp_f: int = 77
    group: int = 0
    group_mah: list[int] = field(default_factory=lambda: [0] * 10)
    group_mwh: list[int] = field(default_factory=lambda: [0] * 10)
    dplus_v: float = 0.0
    dminus_v: float = 0.0
    charging_mode: int = 0
    record_mah: int = 0
    record_mwh: int = 0
    record_threshold_a: float = 0.0
    record_time_s: int = 0
    recording: bool = False
    screen_timeout_min: int = 0
    brightness: int = 5
    load_ohm: float = 0.0
    screen: int = 0

    @property
    def energy_j(self) -> float:
        """The selected group's cumulative energy (1 mWh = 3.6 J steps)."""
        return self.group_mwh[self.group] * 3.6


def um34c_checksum(frame: bytes) -> int:
    """XOR of the UM34C checksum bytes of a 130-byte frame."""
    x = 0
    for off in UM34C_CHECKSUM_OFFSETS:
        x ^= frame[off]
    return x


def _u(x: float, lsb: float, bits: int) -> int:
    return max(0, min((1 << bits) - 1, round(x / lsb)))


def encode_frame(r: UMReading) -> bytes:
    """The 130 bytes a meter of model ``r.model`` sends for reading ``r`` (values are quantised)."""
    m = MODELS[r.model]
    groups: list[int] = []
    for mah, mwh in zip(r.group_mah, r.group_mwh, strict=True):
        groups += [mah & 0xFFFFFFFF, mwh & 0xFFFFFFFF]
    raw = bytearray(
        struct.pack(
            _FMT,
            m.model_id,
            _u(r.voltage_v, m.volt_lsb_v, 16),
            _u(r.current_a, m.curr_lsb_a, 16),
            _u(r.power_w, 0.001, 32),
            r.temp_c & 0xFFFF,
            r.temp_f & 0xFFFF,
            r.group,
            *groups,
            _u(r.dplus_v, 0.01, 16),
            _u(r.dminus_v, 0.01, 16),
            r.charging_mode,
            r.record_mah & 0xFFFFFFFF,
            r.record_mwh & 0xFFFFFFFF,
            _u(r.record_threshold_a, 0.01, 16),
            r.record_time_s & 0xFFFFFFFF,
            int(r.recording),
            r.screen_timeout_min,
            r.brightness,
            _u(r.load_ohm, 0.1, 32),
            r.screen,
            END_MARKER,
        )
    )
    if m.checksummed:
        raw[128] = 0x00
        raw[129] = um34c_checksum(bytes(raw))
    return bytes(raw)


def check_frame(frame: bytes, model: UMModel) -> str | None:
    """Why ``frame`` is not a valid frame of ``model``, or ``None`` if it is."""
    if len(frame) != FRAME_LEN:
        return f"frame has {len(frame)} bytes, expected {FRAME_LEN}"
    mid = struct.unpack_from(">H", frame, 0)[0]
    if mid != model.model_id:
        other = _BY_ID.get(mid)
        hint = f" (that is a {other.name.upper()})" if other else ""
        return f"model ID 0x{mid:04X}{hint}, expected 0x{model.model_id:04X}"
    if model.checksummed:
        if frame[129] != um34c_checksum(frame):
            return f"checksum 0x{frame[129]:02X} does not match 0x{um34c_checksum(frame):02X}"
    elif struct.unpack_from(">H", frame, 128)[0] != END_MARKER:
        return "end marker is not 0xFFF1"
    group = struct.unpack_from(">H", frame, 14)[0]
    if group > 9:
        return f"selected data group {group} is not 0–9"
    if struct.unpack_from(">H", frame, 116)[0] > 1:
        return "recording flag is neither 0 nor 1"
    return None


def decode_frame(frame: bytes, model: UMModel) -> UMReading:
    """Decode one validated frame; :class:`UMProtocolError` when it is not a valid ``model`` frame."""
    problem = check_frame(frame, model)
    if problem is not None:
        raise UMProtocolError(f"{model.name}: bad frame: {problem}")
    v = struct.unpack(_FMT, frame)
    groups = v[7:27]
    (dp, dm, mode, rec_mah, rec_mwh, thr, rec_t, recording, timeout, bright, load, screen, _end) = v[27:]
    return UMReading(
        model=model.name,
        voltage_v=v[1] * model.volt_lsb_v,
        current_a=v[2] * model.curr_lsb_a,
        power_w=v[3] * 0.001,
        temp_c=v[4],
        temp_f=v[5],
        group=v[6],
        group_mah=list(groups[0::2]),
        group_mwh=list(groups[1::2]),
        dplus_v=dp * 0.01,
        dminus_v=dm * 0.01,
        charging_mode=mode,
        record_mah=rec_mah,
        record_mwh=rec_mwh,
        record_threshold_a=thr * 0.01,
        record_time_s=rec_t,
        recording=bool(recording),
        screen_timeout_min=timeout,
        brightness=bright,
        load_ohm=load * 0.1,
        screen=screen,
    )


#: Power register resolution (W) and the relative slack allowed on top of quantisation.
POWER_LSB_W = 0.001
POWER_REL_TOL = 0.005
#: Relative slack of the load resistance (computed by the meter from unrounded values).
LOAD_REL_TOL = 0.02


def implausible(r: UMReading, model: UMModel) -> str | None:
    """Why reading ``r`` cannot be what a ``model`` meter measured (a corrupted frame), or ``None``."""
    v, i, p = r.voltage_v, r.current_a, r.power_w
    if v > model.max_voltage_v:
        return f"voltage {v:g} V is above the {model.name.upper()}'s range ({model.max_voltage_v:g} V)"
    if i > model.max_current_a:
        return f"current {i:g} A is above the {model.name.upper()}'s range ({model.max_current_a:g} A)"
    # P = V·I: each of V and I is off by at most half its step, P by half of its own
    tol = (v * model.curr_lsb_a + i * model.volt_lsb_v + model.volt_lsb_v * model.curr_lsb_a) / 2
    tol += POWER_LSB_W / 2 + POWER_REL_TOL * v * i + 1e-9
    if abs(p - v * i) > tol:
        return f"power {p:g} W is not voltage × current ({v * i:.4g} W)"
    if i >= 20 * model.curr_lsb_a and r.load_ohm > 0:
        expect = v / i
        spread = expect * (LOAD_REL_TOL + model.curr_lsb_a / i + model.volt_lsb_v / max(v, model.volt_lsb_v)) + 0.1
        if abs(r.load_ohm - expect) > spread:
            return f"load {r.load_ohm:g} Ω is not voltage / current ({expect:.4g} Ω)"
    if not -40 <= r.temp_c <= 150:
        return f"temperature {r.temp_c} °C is outside -40..150 °C"
    if abs(r.temp_f - (r.temp_c * 9 / 5 + 32)) > 1.5:
        return f"temperature {r.temp_f} °F does not match {r.temp_c} °C"
    if r.dplus_v > 5.5 or r.dminus_v > 5.5:
        return "data-line voltage above 5.5 V"
    if r.brightness > 5 or r.screen_timeout_min > 9 or r.screen > 6 or r.charging_mode > 32:
        return "settings fields hold values the meter cannot have"
    if r.record_threshold_a > 0.31:
        return f"record threshold {r.record_threshold_a:g} A is above 0.30 A"
    return None


def extract_frame(buf: bytearray, model: UMModel) -> tuple[bytes | None, int, str | None]:
    """Take the first valid ``model`` frame out of ``buf`` (modified in place).

    Returns ``(frame, dropped, last_problem)``: the frame or ``None`` when more bytes are needed, how many
    garbage bytes were discarded before it, and why the last rejected candidate was rejected. Bytes that
    could still begin a frame are kept. Never raises.
    """
    dropped = 0
    problem: str | None = None
    while True:
        i = buf.find(model.id_bytes)
        if i < 0:
            keep = 1 if buf and buf[-1] == model.id_bytes[0] else 0
            n = len(buf) - keep
            if n > 0:
                if problem is None:
                    problem = _describe_garbage(bytes(buf[:n]))
                del buf[:n]
                dropped += n
            return None, dropped, problem
        if i:
            if problem is None:
                problem = _describe_garbage(bytes(buf[:i]))
            del buf[:i]
            dropped += i
        if len(buf) < FRAME_LEN:
            return None, dropped, problem
        candidate = bytes(buf[:FRAME_LEN])
        problem_here = check_frame(candidate, model)
        if problem_here is None:
            del buf[:FRAME_LEN]
            return candidate, dropped, problem
        problem = problem_here
        del buf[:1]  # not a frame after all: drop one byte and search again (sigrok's resync)
        dropped += 1


def _describe_garbage(data: bytes) -> str:
    if len(data) >= 2:
        other = _BY_ID.get(struct.unpack_from(">H", data, 0)[0])
        if other is not None:
            return f"received frames of a {other.name.upper()}; use {other.name}:// in the meter URI"
    return f"{len(data)} bytes that do not start a frame"
