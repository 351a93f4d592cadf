"""Bring-up checks for a board before any experiment (``testbed doctor``): each PASS, WARN or FAIL with a fix.

The checks run on the board itself (a board installs ``devices`` alone), against the real ``/`` or an
emulated tree:

* ``board`` — which profile the board is detected as;
* ``cpufreq`` — policies, their governors and frequency tables, whether ``userspace`` is offered;
* ``write-access`` — every file a frequency change writes (``scaling_governor``, ``scaling_min_freq``,
  ``scaling_max_freq``, ``scaling_setspeed``) is probed with a write of its *current* value, which the
  kernel treats as a no-op; a permission error names the udev rule and group that grant access;
* ``round-trip`` — under a :class:`~devices.guard.BoardGuard`, every available frequency of every
  policy is set and read back (``scaling_cur_freq`` and the hardware clock); the saved state is restored
  afterwards and compared with what was there before;
* ``thermal`` and ``throttle`` — thermal zones against the profile's limits, ``vcgencmd get_throttled``;
* ``meter`` — the meter URI opens, samples arrive, and their real rate against the nominal one;
* ``clock`` — the kernel clock source behind ``time.monotonic_ns()`` timestamps;
* ``agent-port`` — the agent's TCP port is free (or already served by an agent);
* ``saved-state`` — a state file left by a killed process (``testbed board restore`` puts it back);
* ``runtime`` — onnxruntime is installed (the agent needs it to run models).

Failure modes: the checks never raise for a board problem — a problem is a ``FAIL`` (or ``WARN``) row.
Only a bad argument (sysfs root not a directory, malformed meter URI) raises
:class:`~devices.errors.BadInputError`.
"""

from __future__ import annotations

import errno
import grp
import importlib.util
import io
import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from devices.board import Board
from devices.cpufreq import CpufreqPolicy
from devices.errors import BadInputError, HardwareError, PermissionDeniedError, TestbedError
from devices.sysroot import open_sysfs
from devices.thermal import read_thermal_zones

Status = Literal["PASS", "WARN", "FAIL"]

#: Where ``testbed agent install-service`` puts the udev rule that lets the ``testbed`` group write cpufreq.
UDEV_RULE_PATH = "etc/udev/rules.d/99-testbed-cpufreq.rules"
GROUP = "testbed"
CLOCKSOURCE_DIR = "sys/devices/system/clocksource/clocksource0"
#: Clock sources whose ``CLOCK_MONOTONIC`` is fine-grained and cheap (arm64 generic timer, x86 TSC).
GOOD_CLOCKSOURCES = ("arch_sys_counter", "tsc", "arch_mem_counter", "riscv_clocksource")
#: The files a frequency change writes, in the order :meth:`CpufreqPolicy.set_frequency` writes them.
WRITTEN_FILES = ("scaling_governor", "scaling_min_freq", "scaling_max_freq", "scaling_setspeed")
DEFAULT_AGENT_PORT = 8765


@dataclass(frozen=True)
class Check:
    """One row of the doctor's report; ``fix`` is one line saying what to do (``None`` on PASS)."""

    name: str
    status: Status
    detail: str
    fix: str | None = None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class DoctorOptions:
    """What to check. ``meter_seconds`` is how long the meter is sampled (s); ``agent_port`` 0 skips that check."""

    sysfs_root: Path = Path("/")
    board: str | None = None
    meter_uri: str | None = None
    meter_seconds: float = 3.0
    agent_port: int = DEFAULT_AGENT_PORT
    state_dir: Path | None = None
    round_trip: bool = True


@dataclass
class DoctorReport:
    """All checks in order; ``ok`` is False when any FAILed."""

    sysfs_root: str
    emulated: bool
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(c.status == "FAIL" for c in self.checks)

    def counts(self) -> dict[str, int]:
        return {s: sum(c.status == s for c in self.checks) for s in ("PASS", "WARN", "FAIL")}

    def to_dict(self) -> dict[str, object]:
        return {
            "sysfs_root": self.sysfs_root,
            "emulated": self.emulated,
            "ok": self.ok,
            "counts": self.counts(),
            "checks": [c.to_dict() for c in self.checks],
        }


def _group_fix() -> str:
    """The one-line fix for missing cpufreq write access."""
    return (
        f"run `sudo testbed agent install-service --apply` (installs /{UDEV_RULE_PATH} giving group '{GROUP}' "
        f"write access) and `sudo usermod -aG {GROUP} $USER`, then log in again — or run as root"
    )


def _access_hint(sysfs_root: Path) -> str:
    """What is missing of the rule-and-group setup, for the detail text."""
    parts = []
    rule = sysfs_root / UDEV_RULE_PATH
    parts.append(f"udev rule {'present' if rule.exists() else 'missing'} (/{UDEV_RULE_PATH})")
    try:
        members = grp.getgrnam(GROUP)
        mine = GROUP in {grp.getgrgid(g).gr_name for g in os.getgroups()} or os.getgid() == members.gr_gid
        parts.append(f"group '{GROUP}' exists, you are {'' if mine else 'not '}a member")
    except KeyError:
        parts.append(f"no group '{GROUP}'")
    return "; ".join(parts)


def check_board(board: Board) -> Check:
    try:
        profile = board.profile
    except TestbedError as exc:
        return Check("board", "WARN", f"no board profile: {exc}", "pass --board NAME (see `testbed board profiles`)")
    where = f"emulated at {board.sysfs.root}" if board.sysfs.is_emulated else "detected"
    return Check("board", "PASS", f"{profile.name} ({profile.title}, {where})")


def check_cpufreq(policies: list[CpufreqPolicy]) -> Iterator[Check]:
    for p in policies:
        try:
            freqs = p.available_khz
            table = f"{len(freqs)} frequencies {freqs[0]}..{freqs[-1]} kHz" if freqs else "no frequency table"
            base = f"{p.name}: cpus {','.join(map(str, p.cpus))}, driver {p.driver}, governor {p.governor}, {table}"
            governors = p.governors
        except TestbedError as exc:
            yield Check("cpufreq", "FAIL", f"{p.name}: unreadable: {exc}", "check the kernel's cpufreq driver")
            continue
        if "userspace" in governors:
            yield Check("cpufreq", "PASS", f"{base}; userspace governor available")
        else:
            yield Check(
                "cpufreq",
                "WARN",
                f"{base}; no userspace governor (governors: {' '.join(governors) or 'none'}): frequencies are "
                "pinned with scaling_min_freq = scaling_max_freq instead",
                "load it with `sudo modprobe cpufreq_userspace` (CONFIG_CPU_FREQ_GOV_USERSPACE) for exact setspeed",
            )


def probe_write_access(policy: CpufreqPolicy) -> list[str]:
    """The files of ``policy`` a frequency change writes that this process may not write.

    Each file is written with its current value (a no-op for the kernel). ``scaling_setspeed`` outside
    the ``userspace`` governor answers ``EINVAL`` — after the permission check, so it still proves access.
    """
    denied: list[str] = []
    for leaf in WRITTEN_FILES:
        rel = f"{policy.dir}/{leaf}"
        if not policy.sysfs.exists(rel):
            continue
        if leaf == "scaling_setspeed" and "userspace" not in policy.governors:
            continue
        current = policy.sysfs.read_optional(rel)
        if current is None:
            continue
        value = current
        if leaf == "scaling_setspeed" and not current.isdigit():  # "<unsupported>" outside userspace
            value = str(policy.cur_khz or policy.hw_max_khz)
        try:
            policy.sysfs.write(rel, value)
        except PermissionDeniedError:
            denied.append(leaf)
        except (HardwareError, BadInputError):
            pass  # EINVAL and friends: the kernel got as far as checking the value, so access is granted
    return denied


def check_write_access(policies: list[CpufreqPolicy], sysfs_root: Path) -> Iterator[Check]:
    for p in policies:
        denied = probe_write_access(p)
        if denied:
            yield Check(
                "write-access",
                "FAIL",
                f"{p.name}: cannot write {', '.join(denied)} (permission denied; {_access_hint(sysfs_root)})",
                _group_fix(),
            )
        else:
            yield Check("write-access", "PASS", f"{p.name}: governor, limits and setspeed writable")


def _round_trip_targets(policy: CpufreqPolicy) -> list[int]:
    freqs = policy.available_khz
    return freqs if freqs else sorted({policy.hw_min_khz, policy.hw_max_khz})


def check_round_trip(board: Board, policies: list[CpufreqPolicy], state_dir: Path | None) -> Iterator[Check]:
    """Set and read back every frequency of every policy, then compare the restored state with the original."""
    from devices.guard import BoardGuard

    before = {p.name: p.state() for p in policies}
    results: dict[str, list[tuple[int, int | None, int | None, str | None]]] = {p.name: [] for p in policies}
    try:
        with BoardGuard(board.sysfs, state_dir=state_dir, owner="testbed doctor", log=io.StringIO()) as guard:
            for p in policies:
                for f in _round_trip_targets(p):
                    rb = guard.set_cpu_frequency(p, f)
                    results[p.name].append((f, rb.scaling_cur_khz, rb.hardware_khz, rb.hardware_source))
    except PermissionDeniedError as exc:
        yield Check("round-trip", "FAIL", f"set/read-back stopped: {exc}", _group_fix())
        return
    except TestbedError as exc:
        yield Check(
            "round-trip",
            "FAIL",
            f"set/read-back failed: {exc}",
            "stop the process holding the board (or `testbed board restore`) and run doctor again",
        )
        return
    for p in policies:
        rows = results[p.name]
        wrong_cur = [f for f, cur, _hw, _src in rows if cur is not None and cur != f]
        wrong_hw = [(f, hw) for f, _cur, hw, _src in rows if hw is not None and abs(hw - f) > 0.02 * f]
        unknown_hw = all(hw is None for _f, _cur, hw, _src in rows)
        after = p.state()
        restored = after == before[p.name]
        tried = f"{len(rows)} levels"
        if not restored:
            yield Check(
                "round-trip",
                "FAIL",
                f"{p.name}: state after restore {after} differs from before {before[p.name]}",
                "run `testbed board restore`, then check which other process changes cpufreq (a power daemon?)",
            )
        elif wrong_cur:
            yield Check(
                "round-trip",
                "FAIL",
                f"{p.name}: scaling_cur_freq did not follow the request at {', '.join(map(str, wrong_cur))} kHz",
                "another governor or daemon is changing the frequency; stop it (e.g. `systemctl stop cpufrequtils`)",
            )
        elif wrong_hw:
            listed = ", ".join(f"{f}->{hw}" for f, hw in wrong_hw)
            yield Check(
                "round-trip",
                "WARN",
                f"{p.name}: {tried} set; the hardware clock differs from the request at {listed} kHz "
                f"({rows[0][3]}); restored",
                "firmware or throttling overrides the kernel: cool the board, check the supply, update the bootloader",
            )
        elif unknown_hw:
            yield Check(
                "round-trip",
                "WARN",
                f"{p.name}: {tried} set and read back via scaling_cur_freq only; restored",
                "run doctor as root (cpuinfo_cur_freq is root-only) or add yourself to 'video' for vcgencmd",
            )
        else:
            src = rows[0][3]
            yield Check("round-trip", "PASS", f"{p.name}: {tried} set, read back ({src}) and restored")


def check_thermal(board: Board) -> Iterator[Check]:
    zones = read_thermal_zones(board.sysfs)
    if not zones:
        yield Check(
            "thermal", "WARN", "no thermal zones", "throttling cannot be seen; check CONFIG_THERMAL on this kernel"
        )
    else:
        try:
            limits = {z.type: z for z in board.profile.thermal_zones}
        except TestbedError:
            limits = {}
        hot = []
        for z in zones:
            lim = limits.get(z.type)
            soft = lim.passive_c if lim is not None else None
            if z.temp_c is not None and soft is not None and z.temp_c >= soft:
                hot.append(f"{z.type} {z.temp_c:.1f} °C ≥ {soft:g} °C")
        temps = ", ".join(f"{z.type} {z.temp_c:.1f} °C" if z.temp_c is not None else f"{z.type} n/a" for z in zones)
        if hot:
            yield Check("thermal", "WARN", f"hot: {'; '.join(hot)}", "add a heatsink or fan before measuring")
        else:
            yield Check("thermal", "PASS", temps)
    try:
        throttle = board.throttle()
    except TestbedError as exc:
        yield Check("throttle", "WARN", f"vcgencmd get_throttled failed: {exc}", "check that vcgencmd works")
        return
    if throttle is None:
        return  # not a Raspberry Pi (no vcgencmd): nothing to report
    flags = " ".join(throttle.flags) or "none"
    if throttle.throttled_now:
        yield Check(
            "throttle",
            "FAIL",
            f"throttled now ({throttle.raw:#x}: {flags})",
            "use the official 5.1 V / 3 A supply and cool the board; measurements taken now are not valid",
        )
    elif throttle.raw:
        yield Check(
            "throttle",
            "WARN",
            f"throttled since boot ({throttle.raw:#x}: {flags})",
            "reboot after fixing the supply/cooling so the sticky flags clear",
        )
    else:
        yield Check("throttle", "PASS", "vcgencmd get_throttled 0x0: never throttled since boot")


def check_meter(uri: str | None, sysfs_root: Path, seconds: float) -> Check:
    """Open the meter, sample it for ``seconds`` and report its real sample rate (Hz)."""
    from devices.meters import Sampler, open_meter
    from devices.meters.detect import detect_meters

    if uri is None:
        found = [m["uri"] for m in detect_meters(sysfs_root)]
        seen = f"detected: {', '.join(found)}" if found else "none detected"
        return Check(
            "meter",
            "WARN",
            f"no --meter given ({seen}); energy would only be modelled",
            "pass --meter URI, e.g. um25c:///dev/rfcomm0 (see `testbed meter list`)",
        )
    try:
        meter = open_meter(uri, sysfs_root=sysfs_root)
    except BadInputError:
        raise
    except TestbedError as exc:
        return Check("meter", "FAIL", f"{uri}: {exc}", "check the cable/pairing (`sudo rfcomm bind 0 MAC`)")
    if not meter.measures_energy:
        return Check("meter", "WARN", f"{uri}: the null meter measures nothing", "pass a real --meter URI")
    sampler = Sampler(meter)
    try:
        try:
            sampler.start()
        except TestbedError as exc:
            return Check("meter", "FAIL", f"{uri}: cannot open: {exc}", "check the port, pairing and permissions")
        first_wait = max(3.0, 3 * meter.timeout_s)
        if not sampler.wait_for_samples(1, first_wait):
            last = sampler.events[-1].message if sampler.events else "no answer"
            return Check(
                "meter",
                "FAIL",
                f"{uri}: no sample within {first_wait:g} s ({last})",
                "is the meter on and bound (`sudo rfcomm bind 0 MAC`)? is another program reading it?",
            )
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not sampler.exhausted:
            time.sleep(0.05)
        samples = sampler.samples()
    finally:
        sampler.stop()
    nominal_hz = 1.0 / meter.nominal_period_s if meter.nominal_period_s else None
    if len(samples) < 2:
        return Check("meter", "FAIL", f"{uri}: only {len(samples)} sample in {seconds:g} s", "check the meter link")
    span_s = (samples[-1].t_ns - samples[0].t_ns) / 1e9
    rate_hz = (len(samples) - 1) / span_s if span_s > 0 else 0.0
    mean_w = sum(s.power_w for s in samples) / len(samples)
    nominal = f" (nominal {nominal_hz:.1f} Hz)" if nominal_hz else ""
    detail = f"{uri}: {len(samples)} samples in {span_s:.1f} s = {rate_hz:.1f} Hz{nominal}, mean {mean_w:.2f} W"
    if nominal_hz and rate_hz < 0.5 * nominal_hz:
        return Check("meter", "WARN", detail, "the link is slower than the meter: move closer or use USB serial")
    return Check("meter", "PASS", detail)


def check_clock(board: Board) -> Check:
    cur = board.sysfs.read_optional(f"{CLOCKSOURCE_DIR}/current_clocksource")
    res_ns = time.get_clock_info("monotonic").resolution * 1e9
    if cur is None:
        if board.sysfs.is_emulated:
            return Check("clock", "PASS", f"emulated board: host CLOCK_MONOTONIC, resolution {res_ns:g} ns")
        return Check(
            "clock",
            "WARN",
            f"no {CLOCKSOURCE_DIR}/current_clocksource; CLOCK_MONOTONIC resolution {res_ns:g} ns",
            "check that sysfs is mounted",
        )
    available = board.sysfs.read_optional(f"{CLOCKSOURCE_DIR}/available_clocksource") or ""
    if cur in GOOD_CLOCKSOURCES:
        return Check("clock", "PASS", f"clocksource {cur} (available: {available}), resolution {res_ns:g} ns")
    return Check(
        "clock",
        "WARN",
        f"clocksource {cur} (available: {available}) is coarse or slow for timestamps",
        f"echo {next((c for c in GOOD_CLOCKSOURCES if c in available.split()), 'tsc')} | sudo tee "
        f"/{CLOCKSOURCE_DIR}/current_clocksource",
    )


def check_agent_port(port: int, probe: Callable[[int], bool] | None = None) -> Check | None:
    """Is ``port`` free on loopback for the agent, or already an agent? ``None`` when ``port`` is 0 (skipped)."""
    if port == 0:
        return None
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            return Check("agent-port", "FAIL", f"port {port}: {exc.strerror}", "pick another with --port N")
        is_agent = (probe or _is_agent)(port)
        if is_agent:
            return Check("agent-port", "PASS", f"port {port}: a testbed agent is already listening")
        return Check(
            "agent-port",
            "FAIL",
            f"port {port} is in use by another program",
            f"stop it (`ss -ltnp 'sport = :{port}'` names it) or serve the agent with --port N",
        )
    finally:
        sock.close()
    return Check("agent-port", "PASS", f"port {port} free for `testbed agent serve`")


def _is_agent(port: int) -> bool:
    """True when the program on ``port`` answers ``GET /openapi.json`` like the testbed agent."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
            s.sendall(b"GET /openapi.json HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            data = s.recv(65536)
    except OSError:
        return False
    return b"testbed" in data.lower()


def check_saved_state(board: Board, state_dir: Path | None) -> Check:
    from devices.guard import read_state_file, state_file_for

    path = state_file_for(board.sysfs, state_dir)
    try:
        data = read_state_file(path)
    except TestbedError as exc:
        return Check("saved-state", "FAIL", str(exc), f"delete {path} after checking the board's governors")
    if data is None:
        return Check("saved-state", "PASS", "no board state left by an earlier run")
    holder = "held on purpose by `testbed board set`" if data.get("hold") else "left by a process that did not finish"
    return Check(
        "saved-state", "WARN", f"{path}: saved original state, {holder}", "`testbed board restore` puts it back"
    )


def check_runtime() -> Check:
    spec = importlib.util.find_spec("onnxruntime")
    if spec is None:
        return Check("runtime", "WARN", "onnxruntime not installed", 'pip install -e ".[agent]" on the board')
    from importlib.metadata import version

    return Check("runtime", "PASS", f"onnxruntime {version('onnxruntime')}")


def run_doctor(opts: DoctorOptions) -> DoctorReport:
    """Run every check (see the module docstring) and return the report; never raises for a board problem."""
    sysfs = open_sysfs(opts.sysfs_root)
    board = Board(sysfs, board=opts.board)
    report = DoctorReport(str(sysfs.root), sysfs.is_emulated)
    add = report.checks.append
    add(check_board(board))
    try:
        policies = board.policies()
    except TestbedError as exc:
        policies = []
        add(Check("cpufreq", "FAIL", str(exc), "use a kernel with CONFIG_CPU_FREQ (or --sysfs-root for an emulation)"))
    if not policies and report.checks[-1].name != "cpufreq":
        add(Check("cpufreq", "FAIL", "no cpufreq policies", "use a kernel with cpufreq support"))
    report.checks.extend(check_cpufreq(policies))
    access = list(check_write_access(policies, sysfs.root))
    report.checks.extend(access)
    if opts.round_trip and policies:
        if all(c.status == "PASS" for c in access):
            report.checks.extend(check_round_trip(board, policies, opts.state_dir))
        else:
            add(Check("round-trip", "FAIL", "skipped: no write access to cpufreq", _group_fix()))
    report.checks.extend(check_thermal(board))
    add(check_meter(opts.meter_uri, sysfs.root, opts.meter_seconds))
    add(check_clock(board))
    port = check_agent_port(opts.agent_port)
    if port is not None:
        add(port)
    add(check_saved_state(board, opts.state_dir))
    add(check_runtime())
    return report
