"""A fake RuiDeng UM24C/UM25C/UM34C on a pty pair, speaking the real 130-byte protocol.

The device answers each ``0xF0`` with a frame built by :func:`devices.meters.um_protocol.encode_frame`.
Like the real meters it refreshes its values about twice a second (``update_hz``), so fast polling sees
duplicates; group 0 accumulates mWh/mAh from the exact integral of the waveform. ``0xA0+n`` selects a
data group and ``0xF4`` clears the selected group, as on the meter.

Fault injection (:meth:`FakeUMDevice.inject`), applied to the next requests:

* ``split`` — the frame arrives in pieces with pauses between them;
* ``garbage`` — random bytes before the frame (resynchronisation);
* ``wrong_model`` — a frame of another model instead;
* ``bad_checksum`` — a corrupt UM34C checksum / UM24C-25C end marker;
* ``stall`` — no answer for ``seconds``;
* ``disconnect`` — the port hangs up and returns after ``seconds`` under the same link.

Use :func:`serve_forever` (``testbed meter fake um25c``) to emulate a meter by hand.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from devices.fake.meters.ptyport import PtyDevice
from devices.fake.meters.waveform import Waveform
from devices.meters.base import Clock
from devices.meters.um_protocol import MODELS, UMReading, encode_frame

FAULTS = ("split", "garbage", "wrong_model", "bad_checksum", "stall", "disconnect")


@dataclass
class Fault:
    kind: str
    seconds: float = 0.5


class FakeUMDevice(PtyDevice):
    """A UM meter on a pty; ``port`` is the path to give ``umXXc://``."""

    def __init__(
        self,
        model: str = "um25c",
        waveform: Waveform | None = None,
        *,
        voltage_v: float = 5.1,
        update_hz: float = 2.0,
        link: str | os.PathLike[str] | None = None,
        clock: Clock = time.monotonic_ns,
        seed: int = 0,
    ) -> None:
        if model not in MODELS:
            raise ValueError(f"unknown UM model {model!r}")
        self.model = model
        self.waveform = waveform or Waveform("const", 5.0, 5.0)
        self.voltage_v = voltage_v
        self.update_ns = round(1e9 / update_hz)
        self.clock = clock
        super().__init__(link)
        self.thread_name = f"fake-{model}"
        self.faults: deque[Fault] = deque()
        self.requests = 0
        self.frames_sent = 0
        self._rng = random.Random(seed)
        self._t0 = clock()
        self._group = 0
        self._cleared_j = [0.0] * 10
        self._lock = threading.Lock()

    def _on_start(self) -> None:
        self._t0 = self.clock()

    def inject(self, kind: str, count: int = 1, seconds: float = 0.5) -> None:
        """Apply fault ``kind`` to the next ``count`` requests (see the module docstring)."""
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; faults: {', '.join(FAULTS)}")
        with self._lock:
            for _ in range(count):
                self.faults.append(Fault(kind, seconds))

    # -- the meter's state ---------------------------------------------------------------------------
    def reading(self) -> UMReading:
        """What the meter displays now (values refreshed every ``1/update_hz`` s)."""
        now = self.clock()
        t_upd = (now - self._t0) // self.update_ns * self.update_ns
        t_s = t_upd / 1e9
        p = self.waveform.power_w(t_s)
        e_j = self.waveform.energy_j(0.0, t_s)
        v = self.voltage_v
        mwh = [0] * 10
        mah = [0] * 10
        total_mwh = e_j / 3.6
        mwh_g = max(0.0, total_mwh - self._cleared_j[self._group] / 3.6)
        mwh[self._group] = int(mwh_g)
        mah[self._group] = int(mwh_g / v)
        return UMReading(
            model=self.model, voltage_v=v, current_a=p / v, power_w=p, group=self._group,
            group_mah=mah, group_mwh=mwh, load_ohm=v * v / p if p > 0 else 0.0,
        )  # fmt: skip

    def _handle_command(self, byte: int) -> None:
        if 0xA0 <= byte <= 0xA9:
            self._group = byte - 0xA0
        elif byte == 0xF4:
            t_s = (self.clock() - self._t0) // self.update_ns * self.update_ns / 1e9
            self._cleared_j[self._group] = self.waveform.energy_j(0.0, t_s)

    def _serve(self) -> None:
        while not self._stop.is_set():
            data = self.pty.read(0.05)
            for byte in data:
                if byte != 0xF0:
                    self._handle_command(byte)
                    continue
                self.requests += 1
                self._answer()

    def _answer(self) -> None:
        with self._lock:
            fault = self.faults.popleft() if self.faults else None
        frame = encode_frame(self.reading())
        if fault is None:
            self.pty.write(frame)
        elif fault.kind == "split":
            cut1, cut2 = sorted(self._rng.sample(range(1, len(frame)), 2))
            for part in (frame[:cut1], frame[cut1:cut2], frame[cut2:]):
                self.pty.write(part)
                time.sleep(0.02)
        elif fault.kind == "garbage":
            noise = bytes(self._rng.randrange(256) for _ in range(self._rng.randrange(1, 200)))
            self.pty.write(noise + frame)
        elif fault.kind == "wrong_model":
            other = next(m for m in MODELS if m != self.model)
            r = self.reading()
            r.model = other
            self.pty.write(encode_frame(r))
        elif fault.kind == "bad_checksum":
            bad = bytearray(frame)
            bad[129] ^= 0x5A
            self.pty.write(bytes(bad))
        elif fault.kind == "stall":
            self._stop.wait(fault.seconds)
            self._drain()
        elif fault.kind == "disconnect":
            self.pty.hang_up()
            self._stop.wait(fault.seconds)
            self.pty.reopen()
            return
        self.frames_sent += 1

    def _drain(self) -> None:
        """Forget requests that arrived while stalled (a stalled meter does not queue them)."""
        while self.pty.read(0.0):
            pass


def serve_forever(model: str, link: Path | None, waveform: Waveform, voltage_v: float = 5.1) -> None:
    """Run a fake meter until interrupted (for ``testbed meter fake``)."""
    dev = FakeUMDevice(model, waveform, voltage_v=voltage_v, link=link).start()
    try:
        while True:
            time.sleep(3600)
    finally:
        dev.stop()
