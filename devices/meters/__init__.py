"""Power measurement: meters opened from URIs, a sampler thread per meter, keyed windows, energy.

Quick use::

    from devices.meters import Sampler, open_meter

    with Sampler(open_meter("um25c:///dev/rfcomm0")) as sampler:
        sampler.begin_window("inference")
        run_workload()
        result = sampler.end_window("inference")  # WindowResult: energy_j, mean/peak power, coverage…

Schemes (see :mod:`devices.meters.registry`): ``um24c``/``um25c``/``um34c`` (RuiDeng USB meters),
``ina219+serial``/``ina226+serial`` (Arduino CSV), ``ina3221`` (Jetson rails), ``rapl`` (Intel
powercap), ``pmic`` (Raspberry Pi 5 PMIC), ``model`` (board-profile model), ``replay`` (recorded CSV),
``wave`` (synthetic, fake). Backends are imported only when their scheme is opened (or meters are
detected, :mod:`devices.meters.detect`). URIs are parsed by :mod:`devices.meters.uri`. "No meter" is
:class:`~devices.meters.empty.EmptyMeter`, whose windows say that no energy was measured.
"""

from __future__ import annotations

from devices.meters.base import MeterDisconnected, MeterEvent, MeterExhausted, MeterStall, PowerMeter
from devices.meters.detect import detect_meters
from devices.meters.empty import EmptyMeter
from devices.meters.energy import WindowIntegrator, WindowResult, integrate
from devices.meters.registry import SCHEMES, open_meter, parse_uri
from devices.meters.sampler import Sampler
from devices.meters.samples import Sample, SampleBuffer, read_samples_csv, write_samples_csv

__all__ = [
    "SCHEMES",
    "EmptyMeter",
    "MeterDisconnected",
    "MeterEvent",
    "MeterExhausted",
    "MeterStall",
    "PowerMeter",
    "Sample",
    "SampleBuffer",
    "Sampler",
    "WindowIntegrator",
    "WindowResult",
    "detect_meters",
    "integrate",
    "open_meter",
    "parse_uri",
    "read_samples_csv",
    "write_samples_csv",
]
