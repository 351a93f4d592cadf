"""Every source format the CLI reads, registered in :data:`traces.sources.SOURCES` with its detector.

Detectors look at the first 64 KiB and return a score: 1.0 for a signature only that format has (a
canonical header, a magic number), 0.6–0.9 for a characteristic line, a small score for a near miss (so
an error can name the closest format). Order matters only between equal scores.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from devices.errors import BadInputError
from traces.battery import read_battery
from traces.dvfs import read_dvfs
from traces.parsers import (
    battery_logs,
    ftrace,
    generic_csv,
    jls,
    meter_csv,
    perfetto,
    polled,
    power_supply_log,
    tegrastats,
    time_in_state,
    trace_cmd,
)
from traces.power import power_from_battery, read_power
from traces.source_types import ParseOptions, SourceFormat, Trace, register


def _text(head: bytes) -> str:
    return head.decode("utf-8", "replace")


def _lines(head: bytes, n: int = 40) -> list[str]:
    out = [ln for ln in _text(head).splitlines() if ln.strip()]
    return out[:n]


def _kind_header(head: bytes, kind: str) -> float:
    for ln in _lines(head, 5):
        if ln.lstrip().startswith("#") and kind in ln.lower():
            return 1.0
    return 0.0


_FTRACE_LINE = re.compile(r"\[\d+\]\s+\S*\s*\d+\.\d+:\s+[\w:]+:")


def _sniff_ftrace(head: bytes) -> float:
    text = _text(head)
    if "<html" in text[:2000].lower() or "trace-data" in text:
        return 0.0
    if "cpu_frequency" in text and _FTRACE_LINE.search(text):
        return 0.9
    if text.startswith("# tracer:") or _FTRACE_LINE.search(text):
        return 0.55
    return 0.0


def _sniff_systrace(head: bytes) -> float:
    text = _text(head)[:65536].lower()
    if "<html" in text[:4000] and ("trace-data" in text or "systrace" in text or "catapult" in text):
        return 0.95
    return 0.0


def _sniff_tis(head: bytes) -> float:
    lines = _lines(head)
    marks = sum(1 for ln in lines if re.match(r"^\s*(=+|#\s*t(_s)?=)\s*[\d.]+", ln))
    pairs = sum(1 for ln in lines if re.match(r"^\s*\d{4,10}\s+\d+\s*$", ln))
    if marks >= 2 and pairs:
        return 0.9
    if pairs and pairs >= len(lines) - 1:
        return 0.6  # a raw snapshot: converts with its partner (BEFORE AFTER)
    return 0.2 if pairs else 0.0


def _sniff_polled(head: bytes) -> float:
    lines = [ln for ln in _lines(head) if not ln.lstrip().startswith("#")]
    if not lines:
        return 0.0
    first = re.split(r"[\s,]+", lines[0].strip())
    if (
        first
        and first[0].lower() in ("t_s", "time", "t", "timestamp", "t_ms")
        and any(re.match(r"^(cpu|policy)\d+$", c, re.I) for c in first[1:])
    ):
        return 0.85
    if all(re.match(r"^[\d.]+\s+(cpu|policy)\d+\s+\d+$", ln.strip()) for ln in lines[:10]):
        return 0.85
    return 0.0


def _sniff_power_supply(head: bytes) -> float:
    text = _text(head)
    if "POWER_SUPPLY_" in text:
        return 0.9
    if re.search(r"/power_supply/[^/\s]+/\w+:", text):
        return 0.85
    first = next((ln for ln in _lines(head) if not ln.lstrip().startswith("#")), "").lower()
    if "," in first and any(a in first for a in power_supply_log.ATTRIBUTES):
        return 0.8
    if re.search(r",(discharging|charging|full|not charging)(,|$)", first):
        return 0.6  # a header-less cron log: needs --columns
    return 0.0


def _sniff_tegrastats(head: bytes) -> float:
    lines = _lines(head, 5)
    return 0.9 if lines and tegrastats.looks_like_tegrastats(lines[0]) else 0.0


def _csv_header(head: bytes) -> str:
    return next((ln for ln in _lines(head) if not ln.lstrip().startswith("#")), "").lower()


def _sniff_rd_usb(head: bytes) -> float:
    h = _csv_header(head)
    if "voltage (v)" in h and "current (a)" in h and ("unix time" in h or "accumulated" in h):
        return 0.95
    return 0.3 if "voltage (v)" in h and "current (a)" in h else 0.0


def _sniff_monsoon(head: bytes) -> float:
    h = _csv_header(head).replace(" ", "")
    return 0.95 if "main(ma)" in h or "mainavgcurrent(ma)" in h else 0.0


def _sniff_otii(head: bytes) -> float:
    h = _csv_header(head)
    return 0.9 if re.search(r"main (current|power|voltage)\s*[\[(]", h) else 0.0


def _sniff_upower(head: bytes) -> float:
    lines = _lines(head, 10)
    if lines and all(re.match(r"^\d{9,11}\t-?[\d.]+\t[a-z-]+$", ln.strip()) for ln in lines):
        return 0.95
    return 0.0


def _sniff_batterystats(head: bytes) -> float:
    text = _text(head)
    if "Battery History" in text or re.search(r"^\s*\+\d+[hms]\S*\s+\(\d+\)\s+\d{3}\b", text, re.M):
        return 0.95
    if re.search(r"^\s*\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3} \d{3} (status|volt|temp|charge)=", text, re.M):
        return 0.9
    return 0.0


def _sniff_healthd(head: bytes) -> float:
    return 0.9 if re.search(r"healthd\s*:?\s*battery l=\d+ v=\d+", _text(head)) else 0.0


def _canonical_by_columns(head: bytes) -> str | None:
    """The canonical kind a header-less-comment CSV's columns name (as ``traces.info`` always did)."""
    h = _csv_header(head)
    if "," not in h:
        return None
    cols = {c.strip().partition("_")[0] for c in h.split(",")}
    if "domain" in cols and "freq" in cols:
        return "dvfs_trace"
    if "voltage" in cols and "t" in cols:
        return "battery_trace"
    if "power" in cols and "t" in cols:
        return "power_trace"
    return None


def _sniff_canonical(kind: str) -> object:
    def sniff(head: bytes) -> float:
        if _kind_header(head, kind):
            return 1.0
        return 0.7 if _canonical_by_columns(head) == kind else 0.0

    return sniff


def _sniff_headerless_canonical(head: bytes) -> float:
    return 0.0


def _one(paths: Sequence[Path]) -> Path:
    return paths[0]


def with_columns(path: Path, opts: ParseOptions) -> str | None:
    """The file's text with ``--columns`` as its header line (``None`` without ``--columns``).

    Comment lines stay first, so a ``# dvfs_trace v1`` header keeps its meaning.
    """
    if opts.columns is None:
        return None
    from traces.csvio import read_text

    lines = read_text(path).split("\n")
    k = 0
    while k < len(lines) and (not lines[k].strip() or lines[k].lstrip().startswith("#")):
        k += 1
    return "\n".join([*lines[:k], ",".join(opts.columns), *lines[k:]])


def _dvfs_or_power(opts: ParseOptions, default: str) -> str:
    kind = opts.kind or default
    if kind not in ("dvfs", "power"):
        raise BadInputError(f"--kind {kind} does not apply here; use dvfs or power")
    return kind


def _tegrastats(paths: Sequence[Path], opts: ParseOptions) -> Trace:
    if _dvfs_or_power(opts, "dvfs") == "power":
        return tegrastats.parse_tegrastats_power(paths[0], opts.interval_s)
    return tegrastats.parse_tegrastats_dvfs(paths[0], opts.domains, opts.interval_s)


def _tis(paths: Sequence[Path], opts: ParseOptions) -> Trace:
    if len(paths) == 2:
        return time_in_state.parse_time_in_state_pair(paths[0], paths[1], opts.interval_s, opts.domains, opts.mode)
    return time_in_state.parse_time_in_state(paths[0], opts.domains, mode=opts.mode)


def _csv(paths: Sequence[Path], opts: ParseOptions) -> Trace:
    if opts.column_map is None:
        raise BadInputError("--from csv needs --map (e.g. --map 't_s=Time,voltage_v=V,current_a=I')")
    kind = opts.kind or "battery"
    if kind == "battery" and opts.sign == "auto":
        raise BadInputError(
            "--from csv --kind battery needs the source's current sign: --sign discharge_positive "
            "or --sign charge_positive (BatteryArchive, Linux and Android count charging as positive)"
        )
    sign = "discharge_positive" if opts.sign == "auto" else opts.sign
    return generic_csv.parse_generic_csv(paths[0], opts.column_map, kind, sign, with_columns(paths[0], opts))


def _register_all() -> None:
    def reg(name: str, produces: str, summary: str, sniff: object, parse: object, max_files: int = 1) -> None:
        register(SourceFormat(name, produces, summary, sniff, parse, max_files))  # type: ignore[arg-type]

    reg(
        "dvfs-trace",
        "dvfs_trace",
        "the testbed's DVFS trace CSV",
        _sniff_canonical("dvfs_trace"),
        lambda p, o: read_dvfs(_one(p), text=with_columns(_one(p), o)),
    )
    reg(
        "battery-trace",
        "battery_trace",
        "the testbed's battery trace CSV",
        _sniff_canonical("battery_trace"),
        lambda p, o: read_battery(_one(p), text=with_columns(_one(p), o)),
    )
    reg(
        "power-trace",
        "power_trace",
        "the testbed's power trace CSV",
        _sniff_canonical("power_trace"),
        lambda p, o: read_power(_one(p), text=with_columns(_one(p), o)),
    )
    reg(
        "ftrace",
        "dvfs_trace",
        "ftrace/trace-cmd report text with power:cpu_frequency (and devlib markers)",
        _sniff_ftrace,
        lambda p, o: ftrace.parse_ftrace(_one(p), o.domains),
    )
    reg(
        "systrace",
        "dvfs_trace",
        "Android systrace HTML (the ftrace text inside it)",
        _sniff_systrace,
        lambda p, o: ftrace.parse_ftrace(_one(p), o.domains),
    )
    reg(
        "perfetto",
        "dvfs_trace",
        "Perfetto protobuf trace (ftrace cpu_frequency events)",
        lambda h: 0.8 if perfetto.looks_like_perfetto(h) else 0.0,
        lambda p, o: perfetto.parse_perfetto(_one(p), o.domains),
    )
    reg(
        "trace-cmd",
        "dvfs_trace",
        "trace-cmd trace.dat (through `trace-cmd report`)",
        lambda h: 1.0 if h.startswith(trace_cmd.MAGIC) else 0.0,
        lambda p, o: trace_cmd.parse_trace_dat(_one(p), o.domains),
    )
    reg(
        "time-in-state",
        "dvfs_trace",
        "cpufreq stats/time_in_state: timestamped snapshots, or BEFORE AFTER",
        _sniff_tis,
        _tis,
        max_files=2,
    )
    reg(
        "polled",
        "dvfs_trace",
        "polled scaling_cur_freq log",
        _sniff_polled,
        lambda p, o: polled.parse_polled(_one(p), o.domains),
    )
    reg(
        "tegrastats",
        "dvfs_trace",
        "Jetson tegrastats log (clocks; --kind power for the rails)",
        _sniff_tegrastats,
        _tegrastats,
    )
    reg(
        "power-supply",
        "battery_trace",
        "Linux power_supply log (uevent dumps, grep lines, cron CSV)",
        _sniff_power_supply,
        lambda p, o: power_supply_log.parse_power_supply(_one(p), o.sign, o.columns, o.time_format, o.tz),
    )
    reg(
        "upower",
        "battery_trace",
        "upower history-charge/history-rate files (one or both)",
        _sniff_upower,
        lambda p, o: battery_logs.parse_upower(p),
        max_files=2,
    )
    reg(
        "batterystats",
        "battery_trace",
        "Android dumpsys batterystats --history",
        _sniff_batterystats,
        lambda p, o: battery_logs.parse_batterystats(_one(p)),
    )
    reg(
        "healthd",
        "battery_trace",
        "Android healthd/BatteryService 'battery l= v=' log lines",
        _sniff_healthd,
        lambda p, o: battery_logs.parse_healthd(_one(p)),
    )
    reg(
        "rd-usb",
        "power_trace",
        "rd-usb CSV export of a UM24C/UM25C/UM34C meter",
        _sniff_rd_usb,
        lambda p, o: meter_csv.parse_meter_csv(_one(p), "rd-usb", o.tz, with_columns(_one(p), o)),
    )
    reg(
        "monsoon",
        "power_trace",
        "Monsoon power monitor CSV (Time(ms),Main(mA),Main Voltage(V))",
        _sniff_monsoon,
        lambda p, o: meter_csv.parse_meter_csv(_one(p), "monsoon", o.tz, with_columns(_one(p), o)),
    )
    reg(
        "otii",
        "power_trace",
        "Otii CSV export (Main current/voltage/power)",
        _sniff_otii,
        lambda p, o: meter_csv.parse_meter_csv(_one(p), "otii", o.tz, with_columns(_one(p), o)),
    )
    reg(
        "jls",
        "power_trace",
        "Joulescope .jls recording (needs pyjls)",
        lambda h: 0.95 if jls.looks_like_jls(h) else 0.0,
        lambda p, o: jls.parse_jls(_one(p)),
    )
    reg(
        "csv",
        "battery_trace",
        "any CSV through --map (battery, or power with --kind power)",
        _sniff_headerless_canonical,
        _csv,
    )
    reg(
        "battery",
        "power_trace",
        "a battery trace's load as a power trace",
        lambda h: 0.0,
        lambda p, o: power_from_battery(read_battery(_one(p))),
    )


_register_all()
