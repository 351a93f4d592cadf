"""Recording CPU activity (frequency per policy, utilisation per CPU) beside a power measurement.

``testbed meter read … --activity-csv FILE`` runs an :class:`ActivityRecorder` next to the sampler;
``testbed meter calibrate`` later fits the board profile's power model to the pair. Each row covers
the interval since the previous row: utilisation is psutil's per-CPU busy fraction over that interval,
frequencies are ``scaling_cur_freq`` read at the row's time. CSV format::

    t_ns,t_s,policy0_khz,…,cpu0_util,cpu1_util,…

Failure modes: none at run time (an unreadable frequency is left empty); reading a malformed file
raises :class:`~devices.errors.ParseError`.
"""

from __future__ import annotations

import csv
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from devices.errors import BadInputError, ParseError
from devices.meters.base import Clock
from devices.sysfs import Sysfs

CPUFREQ_DIR = "sys/devices/system/cpu/cpufreq"


@dataclass(frozen=True)
class ActivityRow:
    """Activity over the interval ending at ``t_ns``: kHz per policy, busy fraction per CPU."""

    t_ns: int
    freq_khz: dict[str, float]
    util: dict[int, float]


class ActivityRecorder:
    """Polls frequencies and utilisation every ``period_s`` in a thread and writes rows to a CSV."""

    def __init__(self, path: Path, sysfs: Sysfs, period_s: float = 0.5, clock: Clock = time.monotonic_ns) -> None:
        self.path = path
        self.sysfs = sysfs
        self.period_s = period_s
        self.clock = clock
        self.rows = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        names = [n for n in (sysfs.listdir(CPUFREQ_DIR) if sysfs.is_dir(CPUFREQ_DIR) else [])]
        self.policies = sorted((n for n in names if re.fullmatch(r"policy\d+", n)), key=lambda n: int(n[6:]))
        self.ncpu = psutil.cpu_count() or 1

    def start(self) -> ActivityRecorder:
        self._fh = open(self.path, "w", encoding="utf-8", newline="")  # noqa: SIM115 (closed in stop)
        cols = ["t_ns", "t_s"] + [f"{p}_khz" for p in self.policies] + [f"cpu{i}_util" for i in range(self.ncpu)]
        self._fh.write(",".join(cols) + "\n")
        psutil.cpu_percent(percpu=True)
        self._t0 = self.clock()
        self._write_row()
        self._thread = threading.Thread(target=self._run, name="activity", daemon=True)
        self._thread.start()
        return self

    def _write_row(self) -> None:
        t = self.clock()
        util = psutil.cpu_percent(percpu=True)
        freqs = [self.sysfs.read_int_optional(f"{CPUFREQ_DIR}/{p}/scaling_cur_freq") for p in self.policies]
        cells = [str(t), f"{(t - self._t0) / 1e9:.6f}"]
        cells += ["" if f is None else str(f) for f in freqs]
        cells += [f"{u / 100.0:.4f}" for u in util[: self.ncpu]]
        self._fh.write(",".join(cells) + "\n")
        self.rows += 1

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            self._write_row()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._write_row()
            self._fh.close()
            self._thread = None


def read_activity_csv(path: Path) -> list[ActivityRow]:
    """Rows of an activity CSV; :class:`ParseError` naming the line on bad input."""
    if not path.is_file():
        raise BadInputError(f"{path}: file not found")
    rows: list[ActivityRow] = []
    try:
        with open(path, encoding="utf-8", errors="replace", newline="") as fh:
            table = list(csv.reader(fh))
    except csv.Error as exc:
        raise ParseError(path, None, f"not a CSV file: {exc}") from None
    reader = iter(table)
    header = next(reader, None)
    if not header or header[0] != "t_ns":
        raise ParseError(path, 1, "not an activity CSV: the header must start with t_ns")
    for lineno, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise ParseError(path, lineno, f"expected {len(header)} fields, found {len(row)}")
        try:
            t_ns = int(row[0])
            freqs: dict[str, float] = {}
            util: dict[int, float] = {}
            for name, cell in zip(header[2:], row[2:], strict=True):
                if cell == "":
                    continue
                if name.endswith("_khz"):
                    freqs[name[: -len("_khz")]] = float(cell)
                elif name.startswith("cpu") and name.endswith("_util"):
                    util[int(name[3 : -len("_util")])] = float(cell)
        except ValueError as exc:
            raise ParseError(path, lineno, f"not a number: {exc}") from None
        if rows and t_ns <= rows[-1].t_ns:
            raise ParseError(path, lineno, "time does not increase")
        rows.append(ActivityRow(t_ns, freqs, util))
    return rows
