"""UM meters read through pyserial from fake devices on pty pairs: values, faults, resync, reconnect."""

from __future__ import annotations

from pathlib import Path

import pytest

from devices.errors import BadInputError
from devices.fake.meters.um_device import FakeUMDevice
from devices.fake.meters.waveform import Waveform
from devices.meters import MeterStall, Sampler, open_meter
from devices.meters.base import MeterEvent
from devices.meters.um import UMMeter


@pytest.fixture
def um25c(tmp_path: Path):
    dev = FakeUMDevice("um25c", Waveform("const", 4.2, 4.2), voltage_v=5.05, link=tmp_path / "rfcomm0").start()
    yield dev
    dev.stop()


@pytest.mark.parametrize("model", ["um24c", "um25c", "um34c"])
def test_each_model_reads_its_values(tmp_path: Path, model: str) -> None:
    with FakeUMDevice(model, Waveform("const", 3.3, 3.3), voltage_v=5.1, link=tmp_path / "port") as dev:
        meter = open_meter(f"{model}://{dev.port}")
        try:
            s = meter.read()
        finally:
            meter.close()
    assert isinstance(meter, UMMeter)
    assert s.power_w == pytest.approx(3.3, abs=0.001)
    lsb_v = 0.001 if model == "um25c" else 0.01
    assert s.voltage_v == pytest.approx(5.1, abs=lsb_v)
    assert s.current_a == pytest.approx(3.3 / 5.1, abs=0.001)
    assert s.energy_j is not None and s.energy_j % 3.6 == pytest.approx(0, abs=1e-9)


@pytest.mark.parametrize("fault", ["split", "garbage", "wrong_model", "bad_checksum"])
def test_faulty_answers_are_resynchronised(um25c: FakeUMDevice, fault: str) -> None:
    meter = open_meter(f"um25c://{um25c.port}?timeout_s=2")
    assert isinstance(meter, UMMeter)
    events: list[MeterEvent] = []
    meter.event_sink = events.append
    try:
        um25c.inject(fault, count=2)
        readings = [meter.read() for _ in range(3)]
    finally:
        meter.close()
    assert all(r.power_w == pytest.approx(4.2, abs=0.001) for r in readings)
    if fault != "split":
        assert any(e.kind == "resync" for e in events)
        assert meter.garbage_bytes > 0


def test_wrong_meter_model_stalls_with_a_hint(tmp_path: Path) -> None:
    with FakeUMDevice("um24c", link=tmp_path / "p") as dev:
        meter = open_meter(f"um25c://{dev.port}?timeout_s=0.5")
        try:
            with pytest.raises(MeterStall, match=r"UM24C; use um24c://"):
                meter.read()
        finally:
            meter.close()


def test_stall_times_out_then_recovers(um25c: FakeUMDevice) -> None:
    meter = open_meter(f"um25c://{um25c.port}?timeout_s=0.3")
    try:
        um25c.inject("stall", seconds=0.6)
        with pytest.raises(MeterStall, match=r"no valid UM25C frame within 0\.3 s"):
            meter.read()
        recovered = None
        for _ in range(10):  # the fake stays silent for 0.6 s, then answers again
            meter.reconnect()
            try:
                recovered = meter.read()
                break
            except MeterStall:
                continue
        assert recovered is not None and recovered.power_w == pytest.approx(4.2, abs=0.001)
    finally:
        meter.close()


def test_disconnect_during_a_window_marks_it_incomplete_and_the_sampler_reconnects(um25c: FakeUMDevice) -> None:
    meter = open_meter(f"um25c://{um25c.port}?timeout_s=0.5&rate_hz=5")
    sampler = Sampler(meter, max_backoff_s=0.2).start()
    try:
        assert sampler.wait_for_samples(2, 5)
        sampler.begin_window("w")
        um25c.inject("disconnect", seconds=0.5)
        n = sampler.samples_read
        assert sampler.wait_for_samples(n + 6, 10)  # samples flow again after the reconnect
        result = sampler.end_window("w")
    finally:
        sampler.stop()
    assert result is not None
    kinds = {e.kind for e in sampler.events}
    assert "reconnect" in kinds and ({"disconnect", "stall"} & kinds)
    assert not result.complete
    assert result.gap_s >= 0.4  # the outage (0.5 s) plus reconnecting counts as a gap
    assert result.coverage < 1.0
    assert result.mean_power_w == pytest.approx(4.2, abs=0.01)


def test_missing_port_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="no such serial port"):
        open_meter(f"um25c://{tmp_path / 'nothing'}")


def test_socket_url_target_is_passed_to_pyserial() -> None:
    from devices.meters.registry import parse_uri

    p = parse_uri("um34c://socket://127.0.0.1:7000?logging=debug&baud=9600&rate_hz=2")
    assert p.target == "socket://127.0.0.1:7000?logging=debug"
    assert p.params == {"baud": "9600", "rate_hz": "2"}


def test_a_meter_behind_a_tcp_bridge_via_pyserial_socket_url() -> None:
    """`um25c://socket://host:port` (e.g. ser2net in front of the rfcomm port) goes through pyserial."""
    import socket
    import threading

    from devices.meters.um_protocol import UMReading, encode_frame

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    frame = encode_frame(UMReading("um25c", 5.01, 0.5, 2.505, group_mwh=[10] + [0] * 9))

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            while data := conn.recv(16):
                for byte in data:
                    if byte == 0xF0:
                        conn.sendall(frame[:40])  # split across TCP segments
                        conn.sendall(frame[40:])

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    meter = open_meter(f"um25c://socket://127.0.0.1:{port}?timeout_s=2")
    try:
        samples = [meter.read() for _ in range(3)]
    finally:
        meter.close()
        server.close()
    assert all(s.power_w == pytest.approx(2.505) and s.energy_j == pytest.approx(36.0) for s in samples)
