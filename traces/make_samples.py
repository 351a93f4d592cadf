"""Regenerate the synthetic sample traces in ``traces/samples/`` (``python -m traces.make_samples``).

Every file written here is **synthetic**: made by this script with a fixed seed, in the exact text
layout of its real source (kernel documentation for ftrace, cpufreq-stats and power_supply). The
battery discharge sample is made by the ECM (see ``samples/README.md``), not here, because ``traces``
does not depend on the battery models.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SAMPLES = Path(__file__).resolve().parent / "samples"
#: Raspberry Pi 4 (BCM2711) cpufreq table, kHz.
RPI4_KHZ = (600000, 750000, 1000000, 1500000)


def _governor_walk(rng: np.random.Generator, n: int) -> list[int]:
    """An ondemand-like walk over the RPi 4 table: mostly holds, sometimes steps or jumps."""
    k = 3
    out = []
    for _ in range(n):
        r = rng.random()
        if r < 0.15:
            k = max(0, k - 1)
        elif r < 0.3:
            k = min(3, k + 1)
        elif r < 0.35:
            k = int(rng.integers(0, 4))
        out.append(RPI4_KHZ[k])
    return out


def ftrace_text(rng: np.random.Generator) -> str:
    """ftrace ``trace`` output of a 4+4 CPU board: cpu_frequency events emitted by another CPU, with a
    sched event in between, and the systrace TGID column on half of the lines."""
    lines = [
        "# tracer: nop",
        "#",
        "# SYNTHETIC sample made by traces/make_samples.py (layout of Documentation/trace/ftrace.rst)",
        "#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION",
        "#              | |         |   |||||     |         |",
    ]
    t = 1177.681723
    little = _governor_walk(rng, 40)
    big = [f * 2 if f >= 1000000 else f + 400000 for f in _governor_walk(rng, 40)]
    for k in range(40):
        t += float(rng.uniform(0.05, 0.4))
        tgid = f"({1855 + k:>5}) " if k % 2 else ""  # systrace's TGID column on odd events
        for cpu in range(4):
            lines.append(
                f"     kworker/0:1-{1855 + k}  {tgid}[000] d..2  {t:.6f}: cpu_frequency: state={little[k]} cpu_id={cpu}"
            )
        lines.append(f"          <idle>-0     [005] d..2  {t + 0.0001:.6f}: sched_switch: prev_comm=swapper/5")
        for cpu in range(4, 8):
            lines.append(
                f"     kworker/4:2-{2855 + k} [004] ..s.  {t + 0.0002:.6f}: cpu_frequency: state={big[k]} cpu_id={cpu}"
            )
    return "\n".join(lines) + "\n"


def time_in_state_text(rng: np.random.Generator) -> str:
    """Snapshots of policy0's ``stats/time_in_state`` every 2 s, as a shell loop writes them."""
    counts = dict.fromkeys(RPI4_KHZ, 0)
    out = ["# SYNTHETIC sample made by traces/make_samples.py; ticks are 10 ms (cpufreq-stats.rst)"]
    t = 1700000000.0
    for _ in range(16):
        out.append(f"=== {t:.2f} policy0")
        out.extend(f"{f} {c}" for f, c in counts.items())
        share = rng.dirichlet(np.ones(4) * 0.6)
        ticks = np.round(share * 200).astype(int)
        for f, d in zip(RPI4_KHZ, ticks, strict=True):
            counts[f] += int(d)
        t += 2.0
    return "\n".join(out) + "\n"


def polled_text(rng: np.random.Generator) -> str:
    """A wide polled ``scaling_cur_freq`` log of four CPUs sharing one policy, 0.1 s period."""
    out = ["# SYNTHETIC sample made by traces/make_samples.py", "t_s cpu0 cpu1 cpu2 cpu3"]
    walk = _governor_walk(rng, 100)
    for k, f in enumerate(walk):
        out.append(f"{1700000000.0 + 0.1 * k:.3f} {f} {f} {f} {f}")
    return "\n".join(out) + "\n"


def power_supply_text(rng: np.random.Generator) -> str:
    """``uevent`` dumps of a laptop-style battery discharging (ACPI reports the current as positive)."""
    out = ["# SYNTHETIC sample made by traces/make_samples.py (units: power_supply ABI)"]
    soc = 0.80
    t = 1700000000
    for _ in range(30):
        current_ua = int(rng.uniform(700000, 1300000))
        voltage_uv = int(1e6 * (3.6 + 0.6 * soc) * 3 - current_ua * 0.15)
        out += [
            f"=== {t}",
            "POWER_SUPPLY_NAME=BAT0",
            "POWER_SUPPLY_TYPE=Battery",
            "POWER_SUPPLY_STATUS=Discharging",
            f"POWER_SUPPLY_VOLTAGE_NOW={voltage_uv}",
            f"POWER_SUPPLY_CURRENT_NOW={current_ua}",
            f"POWER_SUPPLY_CAPACITY={round(soc * 100)}",
            f"POWER_SUPPLY_CHARGE_NOW={int(soc * 4000000)}",
            "POWER_SUPPLY_CHARGE_FULL=4000000",
            f"POWER_SUPPLY_TEMP={int(rng.uniform(300, 320))}",
        ]
        soc -= current_ua * 10 / 3600 / 4e6
        t += 10
    return "\n".join(out) + "\n"


def power_csv_text(rng: np.random.Generator) -> str:
    """A 60 s pass of a board running inference: 0.8 W idle, bursts of 2.5–4.0 W, 0.5 s resolution."""
    out = [
        "# power_trace v1; semantics=zero_order_hold; duration_s=60; source=SYNTHETIC (traces/make_samples.py)",
        "t_s,power_w",
    ]
    for k in range(120):
        busy = (k % 8) < 5
        p = float(rng.uniform(2.5, 4.0)) if busy else 0.8
        out.append(f"{0.5 * k:g},{p:.3f}")
    return "\n".join(out) + "\n"


def main() -> None:
    rng = np.random.default_rng(2021)
    files = {
        "ftrace-cpu-frequency.synthetic.txt": ftrace_text(rng),
        "time-in-state.synthetic.txt": time_in_state_text(rng),
        "polled-scaling-cur-freq.synthetic.txt": polled_text(rng),
        "power-supply-uevent.synthetic.log": power_supply_text(rng),
        "power-inference.synthetic.csv": power_csv_text(rng),
    }
    for name, text in files.items():
        (SAMPLES / name).write_text(text, encoding="utf-8")
        print(f"wrote {SAMPLES / name}")


if __name__ == "__main__":
    main()
