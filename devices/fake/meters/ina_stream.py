"""A fake Arduino streaming INA219/INA226 readings as CSV on a pty pair.

It behaves like the common Adafruit_INA219 sketch: after a reset it prints a banner, then one line
per sample, ``millis,busV,shunt_mV,loadV,current_mA`` (``layout="5"``; ``"6"`` adds ``power_mW``,
``"header"`` prints a header line naming the columns first). Volts are printed with three decimals,
milliamps and millivolts with two, after the chip's quantisation (INA219 bus LSB 4 mV, INA226
1.25 mV). The load sits on the bus side of a 0.1 Ω shunt. ``millis`` starts at ``millis_start``
(set it near 2³² to test the wrap).

Fault injection (:meth:`FakeInaStream.inject`): ``partial`` (a line cut short), ``garbage`` (random
bytes), ``stall`` (silence for ``seconds``), ``disconnect`` (hang up for ``seconds``; back under the
same link), ``reset`` (``millis`` restarts at 0 after a new banner).
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import deque
from pathlib import Path

from devices.fake.meters.ptyport import PtyDevice
from devices.fake.meters.waveform import Waveform
from devices.meters.base import Clock

BANNER = ("Hello!", "Measuring voltage and current with INA219 ...")
SHUNT_OHM = 0.1
BUS_LSB_V = {"ina219": 0.004, "ina226": 0.00125}
FAULTS = ("partial", "garbage", "stall", "disconnect", "reset")


class FakeInaStream(PtyDevice):
    """An Arduino + INA2xx printing CSV at ``rate_hz`` on a pty."""

    def __init__(
        self,
        waveform: Waveform | None = None,
        *,
        rate_hz: float = 100.0,
        bus_v: float = 5.0,
        chip: str = "ina219",
        layout: str = "5",
        millis_start: int = 0,
        link: str | os.PathLike[str] | None = None,
        clock: Clock = time.monotonic_ns,
        seed: int = 0,
    ) -> None:
        if chip not in BUS_LSB_V or layout not in ("5", "6", "header"):
            raise ValueError("chip must be ina219/ina226 and layout 5, 6 or header")
        self.waveform = waveform or Waveform("const", 2.5, 2.5)
        self.period_ns = round(1e9 / rate_hz)
        self.bus_v = bus_v
        self.chip = chip
        self.layout = layout
        self.millis_start = millis_start
        self.clock = clock
        super().__init__(link)
        self.faults: deque[tuple[str, float]] = deque()
        self.lines_sent = 0
        self._rng = random.Random(seed)
        self._t0 = clock()
        self._millis0_ns = self._t0
        self._lock = threading.Lock()

    thread_name = "fake-ina"

    def _on_start(self) -> None:
        self._t0 = self._millis0_ns = self.clock()

    def inject(self, kind: str, seconds: float = 0.5) -> None:
        """Apply fault ``kind`` at the next line (see the module docstring)."""
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; faults: {', '.join(FAULTS)}")
        with self._lock:
            self.faults.append((kind, seconds))

    def line_at(self, t_ns: int) -> str:
        """The CSV line the sketch prints for a measurement taken at clock time ``t_ns``."""
        t_s = (t_ns - self._t0) / 1e9
        p = self.waveform.power_w(t_s)
        lsb = BUS_LSB_V[self.chip]
        bus = round(self.bus_v / lsb) * lsb
        current_ma = p / bus * 1000.0
        shunt_mv = current_ma / 1000.0 * SHUNT_OHM * 1000.0
        load = bus + shunt_mv / 1000.0
        millis = (self.millis_start + (t_ns - self._millis0_ns) // 1_000_000) % 2**32
        cols = [str(millis), f"{bus:.3f}", f"{shunt_mv:.2f}", f"{load:.3f}", f"{current_ma:.2f}"]
        if self.layout == "6":
            cols.append(f"{bus * current_ma:.2f}")
        return ",".join(cols)

    def _banner(self) -> None:
        for line in BANNER:
            self.pty.write(line.encode() + b"\r\n")
        if self.layout == "header":
            self.pty.write(b"millis,busV,shunt_mV,loadV,current_mA\r\n")

    def _serve(self) -> None:
        self._banner()
        next_t = self.clock()
        while not self._stop.is_set():
            now = self.clock()
            if next_t > now:
                self._stop.wait((next_t - now) / 1e9)
            t = next_t
            next_t += self.period_ns
            if next_t < self.clock() - 10 * self.period_ns:
                next_t = self.clock()
            with self._lock:
                fault = self.faults.popleft() if self.faults else None
            line = self.line_at(t)
            if fault is None:
                self.pty.write(line.encode() + b"\r\n")
                self.lines_sent += 1
                continue
            kind, seconds = fault
            if kind == "partial":
                self.pty.write(line[: len(line) // 2].encode() + b"\r\n")
            elif kind == "garbage":
                self.pty.write(bytes(self._rng.randrange(256) for _ in range(40)))
                self.pty.write(line.encode() + b"\r\n")
            elif kind == "stall":
                self._stop.wait(seconds)
                next_t = self.clock()
            elif kind == "disconnect":
                self.pty.hang_up()
                self._stop.wait(seconds)
                self.pty.reopen()
                self._banner()
                next_t = self.clock()
            elif kind == "reset":
                self._millis0_ns = self.clock()
                self.millis_start = 0
                self._banner()


def serve_forever(link: Path | None, waveform: Waveform, rate_hz: float, chip: str = "ina219") -> None:
    """Run a fake Arduino until interrupted (for ``testbed meter fake ina219``)."""
    dev = FakeInaStream(waveform, rate_hz=rate_hz, chip=chip, link=link).start()
    try:
        while True:
            time.sleep(3600)
    finally:
        dev.stop()
