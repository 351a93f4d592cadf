"""``pmic://`` — Raspberry Pi 5 PMIC rails from ``vcgencmd pmic_read_adc``.

The tool prints one line per ADC channel, ``<RAIL>_A current(<n>)=<x>A`` or ``<RAIL>_V volt(<n>)=<x>V``;
the channel numbers of a rail's A and V lines differ, so rails are paired by name. Power is
Σ V·I over the rails that have both (``EXT5V`` and ``BATT`` are voltage-only); ``voltage_v`` is
``EXT5V_V``, the 5 V input voltage.

**The PMIC sum is not the 5 V input power**: it misses the USB ports, the PMIC's own losses and
everything on the 5 V rail. ``?estimate_input=1`` applies a published empirical fit
(total ≈ 1.1451·Σ + 0.5879 W, pitop.hongjunwu.com) and is then a *modelled* value. ``?rails=A,B``
restricts the sum; ``rate_hz`` (default 5) sets the poll rate — each sample spawns a process.

Failures: no ``vcgencmd`` → :class:`~devices.errors.UnsupportedError`; a failing call
(``VCHI initialization failed``) → :class:`~devices.errors.PermissionDeniedError` (join the ``video``
group); output with no paired rail → :class:`~devices.errors.UnsupportedError` (not a Pi 5).
Channels reading ``nan`` are skipped and reported.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devices.commands import CommandRunner
from devices.errors import HardwareError, PermissionDeniedError, UnsupportedError
from devices.meters.base import Clock, MeterDisconnected, PowerMeter, raise_bad, rate_param
from devices.meters.samples import Sample
from devices.meters.uri import MeterURI

_LINE = re.compile(r"^\s*([A-Za-z0-9_]+)_([AV])\s+(current|volt)\((\d+)\)\s*=\s*(\S+?)\s*[AV]?\s*$")

#: Empirical input-power fit for the Pi 5 (pitop.hongjunwu.com/guide/power): W = a·Σ + b.
INPUT_FIT = (1.1451, 0.5879)


@dataclass(frozen=True)
class PmicReading:
    """Parsed ``pmic_read_adc`` output: per-rail V and A, the pairs' power, skipped channels."""

    volts: dict[str, float]
    amps: dict[str, float]
    skipped: list[str]

    @property
    def rails_w(self) -> dict[str, float]:
        return {r: self.volts[r] * self.amps[r] for r in sorted(self.volts.keys() & self.amps.keys())}


def pmic_available(runner: CommandRunner) -> bool:
    """True when ``vcgencmd pmic_read_adc`` answers with at least one rail (never raises)."""
    try:
        res = runner.run("vcgencmd", "pmic_read_adc")
    except HardwareError:
        return False
    return res is not None and res.returncode == 0 and bool(parse_pmic_output(res.stdout).rails_w)


def parse_pmic_output(text: str) -> PmicReading:
    """Parse ``vcgencmd pmic_read_adc`` output; unrecognised lines and non-finite values are skipped."""
    volts: dict[str, float] = {}
    amps: dict[str, float] = {}
    skipped: list[str] = []
    for line in text.splitlines():
        m = _LINE.match(line)
        if m is None:
            if line.strip():
                skipped.append(line.strip()[:60])
            continue
        rail, kind, _word, _chan, value = m.groups()
        try:
            x = float(value)
        except ValueError:
            skipped.append(f"{rail}_{kind}")
            continue
        if not math.isfinite(x):
            skipped.append(f"{rail}_{kind}")
            continue
        (amps if kind == "A" else volts)[rail] = x
    return PmicReading(volts, amps, skipped)


class PmicMeter(PowerMeter):
    """Sum of the Pi 5 PMIC rails (optionally the empirical input-power estimate)."""

    scheme = "pmic"
    timeout_s = 2.0

    def __init__(
        self,
        uri: str,
        runner: CommandRunner,
        rails: list[str] | None,
        estimate_input: bool,
        poll_period_s: float,
        *,
        clock: Clock,
    ) -> None:
        super().__init__(uri, clock)
        self.runner = runner
        self.rails = rails
        self.estimate_input = estimate_input
        self.poll_period_s = poll_period_s
        self.nominal_period_s = poll_period_s
        self._warned: set[str] = set()

    @classmethod
    def from_uri(cls, parsed: MeterURI, *, sysfs_root: Path, clock: Clock, **options: Any) -> PmicMeter:
        if parsed.target:
            raise_bad(parsed.raw, "pmic takes no target; use pmic:// or pmic://?rails=VDD_CORE")
        rails = (
            [r.strip() for r in parsed.params["rails"].split(",") if r.strip()] if "rails" in parsed.params else None
        )
        est = parsed.params.get("estimate_input", "0").lower() in ("1", "true", "yes")
        period = rate_param(parsed.params, 5.0, parsed.raw, max_hz=50.0)
        return cls(parsed.raw, CommandRunner(sysfs_root, timeout_s=2.0), rails, est, period, clock=clock)

    def open(self) -> None:
        if self.is_open:
            return
        if self.runner.which("vcgencmd") is None:
            raise UnsupportedError("vcgencmd not found: pmic:// needs a Raspberry Pi 5 (package libraspberrypi-bin)")
        reading = self._query()
        if not reading.rails_w:
            raise UnsupportedError("vcgencmd pmic_read_adc reported no rail with both volts and amps: not a Pi 5?")
        if self.rails:
            missing = [r for r in self.rails if r not in reading.rails_w]
            if missing:
                raise_bad(self.uri, f"unknown PMIC rail(s) {', '.join(missing)}; rails: {', '.join(reading.rails_w)}")
        self.notes = [
            "sum of the PMIC rails: NOT the 5 V input power (USB ports, PMIC losses and the 5 V rail are missing)"
        ]
        if self.estimate_input:
            self.notes.append(f"estimate_input: modelled as {INPUT_FIT[0]}·Σ + {INPUT_FIT[1]} W (empirical fit)")
        self.is_open = True

    def _query(self) -> PmicReading:
        res = self.runner.run("vcgencmd", "pmic_read_adc")
        if res is None:
            raise MeterDisconnected("vcgencmd disappeared")
        if res.returncode != 0:
            msg = (res.stderr or res.stdout).strip().splitlines()
            first = msg[0] if msg else f"exit status {res.returncode}"
            if "VCHI" in first or "permission" in first.lower() or "/dev/vcio" in first:
                raise PermissionDeniedError(
                    f"vcgencmd pmic_read_adc: {first}; add your user to the 'video' group "
                    "(sudo usermod -aG video $USER) or run with sudo"
                )
            if not self.is_open:  # the board has no PMIC ADC (a Pi 4, an emulated board without one)
                raise UnsupportedError(f"vcgencmd pmic_read_adc failed ({first}): pmic:// needs a Raspberry Pi 5")
            raise HardwareError(f"vcgencmd pmic_read_adc failed: {first}")
        return parse_pmic_output(res.stdout)

    def read(self) -> Sample:
        t0 = self.clock()
        reading = self._query()
        t1 = self.clock()
        rails_w = reading.rails_w
        if self.rails:
            rails_w = {r: p for r, p in rails_w.items() if r in self.rails}
        new_skips = set(reading.skipped) - self._warned
        if new_skips:
            self._warned |= new_skips
            self.emit("note", "skipped PMIC channels: " + ", ".join(sorted(new_skips)))
        if not rails_w:
            raise HardwareError("vcgencmd pmic_read_adc: no usable rail in this reading")
        total = sum(rails_w.values())
        if self.estimate_input:
            total = INPUT_FIT[0] * total + INPUT_FIT[1]
        return Sample((t0 + t1) // 2, total, voltage_v=reading.volts.get("EXT5V"))
