"""The UM24C/UM25C/UM34C frame codec and resynchronisation, including random garbage (hypothesis)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.errors import TestbedError
from devices.meters.um_protocol import (
    FRAME_LEN,
    MODELS,
    UM34C_CHECKSUM_OFFSETS,
    UMProtocolError,
    UMReading,
    decode_frame,
    encode_frame,
    extract_frame,
)


def hand_built_um25c() -> bytes:
    """A UM25C frame assembled field by field from the published layout (independent of encode_frame)."""
    b = bytearray(FRAME_LEN)
    struct.pack_into(">H", b, 0, 0x09C9)
    struct.pack_into(">H", b, 2, 5123)  # 5.123 V at 1 mV
    struct.pack_into(">H", b, 4, 9876)  # 0.9876 A at 0.1 mA
    struct.pack_into(">I", b, 6, 5059)  # 5.059 W
    struct.pack_into(">H", b, 10, 31)
    struct.pack_into(">H", b, 12, 88)
    struct.pack_into(">H", b, 14, 3)  # group 3 selected
    struct.pack_into(">II", b, 16 + 3 * 8, 1234, 6172)  # group 3: 1234 mAh, 6172 mWh
    struct.pack_into(">H", b, 96, 60)
    struct.pack_into(">H", b, 100, 2)  # QC3
    struct.pack_into(">I", b, 122, 52)
    struct.pack_into(">H", b, 128, 0xFFF1)
    return bytes(b)


def test_decode_hand_built_um25c_frame_uses_fine_scaling() -> None:
    r = decode_frame(hand_built_um25c(), MODELS["um25c"])
    assert r.voltage_v == pytest.approx(5.123)
    assert r.current_a == pytest.approx(0.9876)
    assert r.power_w == pytest.approx(5.059)
    assert (r.temp_c, r.temp_f, r.group, r.charging_mode) == (31, 88, 3, 2)
    assert r.group_mah[3] == 1234 and r.group_mwh[3] == 6172
    assert r.energy_j == pytest.approx(6172 * 3.6)
    assert r.dplus_v == pytest.approx(0.6)
    assert r.load_ohm == pytest.approx(5.2)


def test_same_raw_values_decode_with_coarse_scaling_on_um24c() -> None:
    b = bytearray(hand_built_um25c())
    struct.pack_into(">H", b, 0, 0x0963)
    r = decode_frame(bytes(b), MODELS["um24c"])
    assert r.voltage_v == pytest.approx(51.23)  # 0.01 V LSB
    assert r.current_a == pytest.approx(9.876)  # 1 mA LSB


def test_um34c_checksum_covers_the_listed_bytes() -> None:
    r = UMReading("um34c", voltage_v=5.02, current_a=1.234, power_w=6.19, group_mwh=[7] * 10)
    frame = encode_frame(r)
    x = 0
    for off in UM34C_CHECKSUM_OFFSETS:
        x ^= frame[off]
    assert frame[129] == x
    assert decode_frame(frame, MODELS["um34c"]).power_w == pytest.approx(6.19)
    for off in (UM34C_CHECKSUM_OFFSETS[5], 129):
        bad = bytearray(frame)
        bad[off] ^= 0x01
        with pytest.raises(UMProtocolError, match="checksum"):
            decode_frame(bytes(bad), MODELS["um34c"])


@pytest.mark.parametrize("model", sorted(MODELS))
def test_roundtrip_within_quantisation(model: str) -> None:
    m = MODELS[model]
    r = UMReading(model, voltage_v=5.08, current_a=0.7321, power_w=3.719, group=1, group_mwh=[0, 42] + [0] * 8)
    d = decode_frame(encode_frame(r), m)
    assert d.voltage_v == pytest.approx(5.08, abs=m.volt_lsb_v)
    assert d.current_a == pytest.approx(0.7321, abs=m.curr_lsb_a)
    assert d.power_w == pytest.approx(3.719, abs=0.001)
    assert d.group == 1 and d.energy_j == pytest.approx(42 * 3.6)


def test_wrong_model_is_named() -> None:
    frame = encode_frame(UMReading("um24c", 5.0, 1.0, 5.0))
    with pytest.raises(UMProtocolError, match="UM24C"):
        decode_frame(frame, MODELS["um25c"])
    buf = bytearray(frame)
    got, dropped, problem = extract_frame(buf, MODELS["um25c"])
    assert got is None and dropped > 0 and problem is not None and "um24c://" in problem


def test_resync_after_garbage_and_a_corrupt_frame() -> None:
    m = MODELS["um25c"]
    good = encode_frame(UMReading("um25c", 5.0, 0.5, 2.5))
    corrupt = bytearray(good)
    corrupt[129] = 0x00  # end marker broken
    buf = bytearray(b"\x09\xc9\x00garbage" + bytes(corrupt) + good)
    frame, dropped, problem = extract_frame(buf, m)
    assert frame == good
    assert dropped == 10 + FRAME_LEN
    assert problem is not None
    assert buf == bytearray()


def test_split_frame_waits_for_the_rest() -> None:
    m = MODELS["um34c"]
    good = encode_frame(UMReading("um34c", 5.0, 0.5, 2.5))
    buf = bytearray(good[:57])
    assert extract_frame(buf, m)[0] is None
    assert bytes(buf) == good[:57]  # kept: it may be the start of a frame
    buf += good[57:]
    assert extract_frame(buf, m)[0] == good


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=600), model=st.sampled_from(sorted(MODELS)))
def test_random_bytes_never_raise_anything_but_project_errors(data: bytes, model: str) -> None:
    m = MODELS[model]
    buf = bytearray(data)
    frame, dropped, _problem = extract_frame(buf, m)
    assert dropped + len(buf) + (FRAME_LEN if frame else 0) == len(data)
    if frame is not None:
        decode_frame(frame, m)  # a frame that passed extraction decodes
    try:
        decode_frame(data[:FRAME_LEN], m)
    except TestbedError:
        pass


@settings(max_examples=150, deadline=None)
@given(
    prefix=st.binary(max_size=300),
    model=st.sampled_from(sorted(MODELS)),
    v=st.floats(0, 30),
    a=st.floats(0, 3),
    w=st.floats(0, 90),
)
def test_a_valid_frame_after_any_garbage_is_recovered(prefix: bytes, model: str, v: float, a: float, w: float) -> None:
    m = MODELS[model]
    good = encode_frame(UMReading(model, v, a, w))
    buf = bytearray(prefix + good)
    frames = []
    for _ in range(len(prefix) // FRAME_LEN + 3):
        frame, _d, _p = extract_frame(buf, m)
        if frame is None:
            break
        frames.append(frame)
    # Garbage may by chance contain a valid frame, but the real one always comes out last.
    assert frames and frames[-1] == good
