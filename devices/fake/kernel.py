"""A fake kernel: a sysfs tree in a directory that behaves like the kernel on writes.

:meth:`FakeKernel.create` lays out, for a :class:`~devices.board_profile.BoardProfile`, the cpufreq
policies (``sys/devices/system/cpu/cpufreq/policyN`` with ``cpuN/cpufreq`` symlinks), the GPU devfreq
device, thermal zones, ``proc/device-tree/model`` and fake board tools in ``usr/bin``. Its state (the
profile, lying modes, timing of the last frequency change) lives in a marker file at the root, so any
process that opens the tree with :func:`devices.sysroot.open_sysfs` gets the same semantics.

Write semantics enforced (``drivers/cpufreq/cpufreq.c``, ``cpufreq_userspace.c``, devfreq ABI):

* ``scaling_governor``: must be listed in ``scaling_available_governors`` (else ``EINVAL``);
  entering ``userspace`` sets setspeed to the current frequency, leaving it makes the file read
  ``<unsupported>``; ``performance``/``powersave`` go to max/min; other governors are modelled as a
  busy system and sit at max.
* ``scaling_setspeed``: ``EINVAL`` unless the governor is ``userspace``; the value is clamped to
  [min, max] and rounded up to the lowest listed frequency at or above it (``CPUFREQ_RELATION_L``).
* ``scaling_min_freq``/``scaling_max_freq``: clamped to the hardware range; a write that would make
  min > max fails with ``EINVAL``; the governor re-targets after every limit change.
* every frequency change updates ``scaling_cur_freq``, ``cpuinfo_cur_freq``, ``stats/time_in_state``
  (10 ms ticks), ``stats/total_trans`` and ``stats/trans_table``; writing ``stats/reset`` clears them.
* read-only files raise ``PermissionError`` (``EACCES``), as sysfs does for files without write mode.

Lying hardware (:meth:`FakeKernel.set_lying`): ``hw_floor_khz`` keeps the hardware clock at or above
a value whatever is requested (Raspberry Pi 5 with an old bootloader); ``hw_cap_khz`` models thermal
throttling that caps the clock and raises the Pi throttle flags; ``hw_override_khz`` pins the hardware
clock to a value (Pi 5 soft throttling that *raised* the clock). ``scaling_cur_freq`` keeps reporting
the request, as real kernels do.

Failure modes: :class:`~devices.errors.BadInputError` when a directory is not a fake-kernel tree or a
profile cannot be laid out; kernel-style :class:`OSError` from writes (turned into project errors by
:class:`~devices.sysfs.Sysfs`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devices.board_profile import BoardProfile, DevfreqProfile, PolicyProfile, load_profile
from devices.errors import BadInputError
from devices.fake.marker import FAKE_KERNEL_MARKER
from devices.sysfs import Sysfs

CPU_DIR = "sys/devices/system/cpu"
CPUFREQ_DIR = f"{CPU_DIR}/cpufreq"
THERMAL_DIR = "sys/class/thermal"
DEVFREQ_CLASS = "sys/class/devfreq"
TICK_S = 0.01  # time_in_state unit: 10 ms

_RO = 0o444
_RW = 0o644
_WO = 0o200


@dataclass
class Lying:
    """How the fake hardware deviates from what the kernel was asked for (all kHz, None = honest)."""

    hw_floor_khz: int | None = None
    hw_cap_khz: int | None = None
    hw_override_khz: int | None = None

    def hardware_khz(self, requested_khz: int) -> int:
        f = requested_khz
        if self.hw_floor_khz is not None:
            f = max(f, self.hw_floor_khz)
        if self.hw_cap_khz is not None:
            f = min(f, self.hw_cap_khz)
        if self.hw_override_khz is not None:
            f = self.hw_override_khz
        return f


@dataclass
class _PolicyRuntime:
    cur_khz: int
    changed_at_s: float
    setspeed_khz: int = 0
    lying: Lying = field(default_factory=Lying)


class FakeKernel:
    """The kernel model of one fake tree (see module docstring)."""

    def __init__(self, root: Path, profile: BoardProfile, state: dict[str, Any]) -> None:
        self.root = root
        self.profile = profile
        self.state = state

    # ---- creation and loading ---------------------------------------------------------------
    @classmethod
    def create(cls, root: str | os.PathLike[str], profile: BoardProfile | str, force: bool = False) -> FakeKernel:
        """Lay out a fresh tree for ``profile`` below ``root``.

        Refuses a non-empty directory that is not already a fake tree unless ``force`` is set.
        """
        prof = load_profile(profile) if isinstance(profile, str) else profile
        root_path = Path(root)
        non_empty = root_path.exists() and any(root_path.iterdir())
        if non_empty and not (root_path / FAKE_KERNEL_MARKER).exists() and not force:
            raise BadInputError(
                f"{root_path}: directory is not empty and is not an emulated board; choose an empty "
                "directory (or pass --force)"
            )
        root_path.mkdir(parents=True, exist_ok=True)
        now = time.monotonic()
        state: dict[str, Any] = {
            "format": "testbed-fake-kernel/1",
            "profile": prof.model_dump(mode="json"),
            "created_unix_s": time.time(),
            "policies": {},
            "devfreq": {},
            "throttled": 0,
            "nvpmodel": {"id": 0, "name": "MAXN"},
        }
        kernel = cls(root_path, prof, state)
        kernel._write_marker()  # writes below are routed through the model from here on
        kernel._layout_cpus(now)
        for dev in prof.devfreq:
            kernel._layout_devfreq(dev, now)
        kernel._layout_thermal()
        kernel._layout_proc()
        from devices.fake.tools import install_tools

        install_tools(root_path, prof.tools)
        if any(uri.startswith("pmic://") for uri in prof.meters):
            from devices.fake.meters.pmic import install_fake_pmic

            install_fake_pmic(root_path)  # vcgencmd pmic_read_adc on an emulated Pi 5
        kernel._write_marker()
        return kernel

    @classmethod
    def load(cls, root: str | os.PathLike[str]) -> FakeKernel:
        """Open an existing fake tree."""
        root_path = Path(root)
        marker = root_path / FAKE_KERNEL_MARKER
        try:
            state = json.loads(marker.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise BadInputError(f"{root_path}: not an emulated board (no {FAKE_KERNEL_MARKER})") from None
        except json.JSONDecodeError as exc:
            raise BadInputError(f"{marker}: corrupt fake-kernel state: {exc.msg}") from None
        profile = BoardProfile.model_validate(state["profile"])
        return cls(root_path, profile, state)

    def sysfs(self) -> Sysfs:
        """A :class:`Sysfs` over this tree whose writes go through the kernel model."""
        return Sysfs(self.root, write_hook=self.write)

    # ---- marker state -------------------------------------------------------------------------
    def _write_marker(self) -> None:
        tmp = self.root / (FAKE_KERNEL_MARKER + ".tmp")
        tmp.write_text(json.dumps(self.state, indent=1), encoding="utf-8")
        os.replace(tmp, self.root / FAKE_KERNEL_MARKER)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise state changes across processes and reload the latest state."""
        lock_path = self.root / (FAKE_KERNEL_MARKER + ".lock")
        with open(lock_path, "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                marker = self.root / FAKE_KERNEL_MARKER
                if marker.exists():
                    self.state = json.loads(marker.read_text(encoding="utf-8"))
                yield
                self._write_marker()
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _runtime(self, policy: str) -> _PolicyRuntime:
        d = self.state["policies"][policy]
        return _PolicyRuntime(
            cur_khz=int(d["cur_khz"]),
            changed_at_s=float(d["changed_at_s"]),
            setspeed_khz=int(d.get("setspeed_khz", 0)),
            lying=Lying(**d.get("lying", {})),
        )

    def _store_runtime(self, policy: str, rt: _PolicyRuntime) -> None:
        self.state["policies"][policy] = {
            "cur_khz": rt.cur_khz,
            "changed_at_s": rt.changed_at_s,
            "setspeed_khz": rt.setspeed_khz,
            "lying": {k: v for k, v in vars(rt.lying).items() if v is not None},
        }

    # ---- file helpers -----------------------------------------------------------------------
    def _put(self, rel: str, value: str | int, mode: int = _RO) -> None:
        """Give ``rel`` the content ``value`` and ``mode``. An unchanged file is left alone, and a changed one
        is rewritten in place (``r+``, then truncate): opening with ``w`` truncates first, which on ext4
        (``auto_da_alloc``) flushes the file on close — measured 3.6 ms a write on this project's VM, so one
        emulated frequency change, about 60 file updates, took 70–90 ms instead of 4 ms on tmpfs."""
        p = self.root / rel
        text = f"{value}\n"
        if not p.exists():
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text, encoding="utf-8")
        elif p.read_text(encoding="utf-8") != text or stat.S_IMODE(p.stat().st_mode) != mode:
            os.chmod(p, 0o644)
            with open(p, "r+", encoding="utf-8") as fh:
                fh.write(text)
                fh.truncate()
        else:
            return
        os.chmod(p, mode)

    def _set(self, rel: str, value: str | int) -> None:
        """Update the content of an existing file, keeping its mode."""
        p = self.root / rel
        mode = stat.S_IMODE(p.stat().st_mode)
        self._put(rel, value, mode)

    def _get(self, rel: str) -> str:
        return (self.root / rel).read_text(encoding="utf-8").strip()

    # ---- layout -------------------------------------------------------------------------------
    def _layout_cpus(self, now: float) -> None:
        all_cpus = sorted(c for p in self.profile.policies for c in p.cpus)
        cpu_range = f"0-{max(all_cpus)}" if len(all_cpus) > 1 else "0"
        for leaf in ("online", "possible", "present"):
            self._put(f"{CPU_DIR}/{leaf}", cpu_range)
        for pol in self.profile.policies:
            base = f"{CPUFREQ_DIR}/{pol.name}"
            cpus = " ".join(str(c) for c in pol.cpus)
            start_khz = pol.max_khz
            self._put(f"{base}/related_cpus", cpus)
            self._put(f"{base}/affected_cpus", cpus)
            self._put(f"{base}/cpuinfo_min_freq", pol.min_khz)
            self._put(f"{base}/cpuinfo_max_freq", pol.max_khz)
            self._put(f"{base}/cpuinfo_transition_latency", pol.transition_latency_ns)
            self._put(f"{base}/cpuinfo_cur_freq", start_khz, 0o400)
            self._put(f"{base}/scaling_cur_freq", start_khz)
            self._put(f"{base}/scaling_driver", pol.driver)
            self._put(f"{base}/scaling_available_governors", " ".join(pol.governors))
            self._put(f"{base}/scaling_governor", pol.default_governor, _RW)
            self._put(f"{base}/scaling_min_freq", pol.min_khz, _RW)
            self._put(f"{base}/scaling_max_freq", pol.max_khz, _RW)
            self._put(f"{base}/scaling_setspeed", "<unsupported>", _RW)
            if pol.has_frequency_table:
                self._put(f"{base}/scaling_available_frequencies", " ".join(str(f) for f in pol.frequencies_khz))
                stats_freqs = pol.frequencies_khz
            else:
                stats_freqs = []
            if stats_freqs:
                self._put(f"{base}/stats/time_in_state", "\n".join(f"{f} 0" for f in reversed(stats_freqs)))
                self._put(f"{base}/stats/total_trans", 0)
                self._put(f"{base}/stats/trans_table", _trans_table_text(stats_freqs, {}))
                self._put(f"{base}/stats/reset", "", _WO)
            self.state["policies"][pol.name] = {
                "cur_khz": start_khz,
                "changed_at_s": now,
                "setspeed_khz": 0,
                "lying": {},
                "trans": {},
                "time_in_state_ticks": {str(f): 0 for f in stats_freqs},
            }
            for cpu in pol.cpus:
                cpu_dir = self.root / CPU_DIR / f"cpu{cpu}"
                cpu_dir.mkdir(parents=True, exist_ok=True)
                link = cpu_dir / "cpufreq"
                if not link.exists():
                    link.symlink_to(Path("..") / "cpufreq" / pol.name)
                self._put(f"{CPU_DIR}/cpu{cpu}/online", 1, _RW)

    def _layout_devfreq(self, dev: DevfreqProfile, now: float) -> None:
        base = f"{dev.device_path}/devfreq/{dev.name}"
        top = dev.frequencies_hz[-1]
        self._put(f"{base}/available_frequencies", " ".join(str(f) for f in dev.frequencies_hz))
        self._put(f"{base}/available_governors", " ".join(dev.governors))
        self._put(f"{base}/governor", dev.default_governor, _RW)
        self._put(f"{base}/cur_freq", top)
        self._put(f"{base}/target_freq", top)
        self._put(f"{base}/min_freq", dev.frequencies_hz[0], _RW)
        self._put(f"{base}/max_freq", top, _RW)
        self._put(f"{base}/userspace/set_freq", "0", _RW)
        self._put(f"{base}/trans_stat", "")
        cls_dir = self.root / DEVFREQ_CLASS
        cls_dir.mkdir(parents=True, exist_ok=True)
        link = cls_dir / dev.name
        if not link.exists():
            link.symlink_to(os.path.relpath(self.root / base, cls_dir))
        self.state["devfreq"][dev.name] = {"base": base, "trans": {}, "changed_at_s": now, "time_ms": {}}
        self._update_devfreq_stats(dev.name, top)

    def _layout_thermal(self) -> None:
        for i, zone in enumerate(self.profile.thermal_zones):
            base = f"{THERMAL_DIR}/thermal_zone{i}"
            self._put(f"{base}/type", zone.type)
            self._put(f"{base}/temp", round(zone.idle_temp_c * 1000))
            self._put(f"{base}/mode", "enabled")

    def _layout_proc(self) -> None:
        model = self.profile.title
        if self.profile.detect.model_contains:
            model = self.profile.detect.model_contains[0] + " (emulated)"
        p = self.root / "proc/device-tree/model"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(model.encode() + b"\x00")  # the real file is NUL-terminated
        if self.profile.detect.compatible_contains:
            compat = b"\x00".join(c.encode() for c in self.profile.detect.compatible_contains) + b"\x00"
            (self.root / "proc/device-tree/compatible").write_bytes(compat)

    # ---- write semantics ----------------------------------------------------------------------
    def write(self, rel: str, value: str) -> None:
        """Perform ``echo value > rel`` with kernel semantics (raises :class:`OSError` like the kernel)."""
        rel = rel.lstrip("/")
        path = self.root / rel
        if not path.exists():
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", str(path))
        if not stat.S_IMODE(path.stat().st_mode) & 0o222:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        with self._locked():
            parts = rel.split("/")
            if rel.startswith(CPUFREQ_DIR + "/") and len(parts) >= 6:
                self._write_cpufreq(parts[5], "/".join(parts[6:]), value.strip())
            elif "/devfreq/" in rel:
                self._write_devfreq(rel, value.strip())
            else:
                self._set(rel, value.strip())

    def _policy_profile(self, name: str) -> PolicyProfile:
        for p in self.profile.policies:
            if p.name == name:
                return p
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", name)

    def _write_cpufreq(self, policy: str, leaf: str, value: str) -> None:
        pol = self._policy_profile(policy)
        base = f"{CPUFREQ_DIR}/{policy}"
        rt = self._runtime(policy)
        governor = self._get(f"{base}/scaling_governor")
        if leaf == "scaling_governor":
            if value not in pol.governors:
                raise OSError(errno.EINVAL, "Invalid argument")
            if governor == "userspace" and value != "userspace":
                rt.setspeed_khz = 0
            if value == "userspace" and governor != "userspace":
                rt.setspeed_khz = rt.cur_khz
            self._set(f"{base}/scaling_governor", value)
            self._set(f"{base}/scaling_setspeed", rt.cur_khz if value == "userspace" else "<unsupported>")
            self._retarget(pol, rt, value)
        elif leaf == "scaling_setspeed":
            if governor != "userspace":
                raise OSError(errno.EINVAL, "Invalid argument")
            freq = _parse_khz(value)
            rt.setspeed_khz = freq
            self._change(pol, rt, self._resolve(pol, freq, relation_low=True))
        elif leaf in ("scaling_min_freq", "scaling_max_freq"):
            freq = min(max(_parse_khz(value), pol.min_khz), pol.max_khz)
            lo = int(self._get(f"{base}/scaling_min_freq"))
            hi = int(self._get(f"{base}/scaling_max_freq"))
            lo, hi = (freq, hi) if leaf == "scaling_min_freq" else (lo, freq)
            if lo > hi:
                raise OSError(errno.EINVAL, "Invalid argument")
            self._set(f"{base}/{leaf}", freq)
            self._retarget(pol, rt, governor)
        elif leaf == "stats/reset":
            st = self.state["policies"][policy]
            st["trans"] = {}
            st["time_in_state_ticks"] = {k: 0 for k in st["time_in_state_ticks"]}
            rt.changed_at_s = time.monotonic()
            self._store_runtime_keep_stats(policy, rt)
            self._render_stats(pol)
            return
        else:
            raise PermissionError(errno.EACCES, "Permission denied")
        self._store_runtime_keep_stats(policy, rt)

    def _store_runtime_keep_stats(self, policy: str, rt: _PolicyRuntime) -> None:
        st = self.state["policies"][policy]
        trans, tis = st.get("trans", {}), st.get("time_in_state_ticks", {})
        self._store_runtime(policy, rt)
        self.state["policies"][policy]["trans"] = trans
        self.state["policies"][policy]["time_in_state_ticks"] = tis

    def _limits(self, pol: PolicyProfile) -> tuple[int, int]:
        base = f"{CPUFREQ_DIR}/{pol.name}"
        return int(self._get(f"{base}/scaling_min_freq")), int(self._get(f"{base}/scaling_max_freq"))

    def _resolve(self, pol: PolicyProfile, freq_khz: int, relation_low: bool) -> int:
        """Clamp to [min, max], then pick a table frequency (RELATION_L: lowest >= f; H: highest <= f)."""
        lo, hi = self._limits(pol)
        f = min(max(freq_khz, lo), hi)
        if not pol.has_frequency_table:
            return f
        table = pol.frequencies_khz
        if relation_low:
            candidates = [x for x in table if x >= f and x <= hi]
            return min(candidates) if candidates else max(x for x in table if x <= hi)
        candidates = [x for x in table if lo <= x <= f]
        return max(candidates) if candidates else min(x for x in table if x >= lo)

    def _retarget(self, pol: PolicyProfile, rt: _PolicyRuntime, governor: str) -> None:
        lo, hi = self._limits(pol)
        if governor == "userspace":
            target = rt.setspeed_khz or rt.cur_khz
            if target > hi:
                new = self._resolve(pol, hi, relation_low=False)
            elif target < lo:
                new = self._resolve(pol, lo, relation_low=True)
            else:
                new = self._resolve(pol, target, relation_low=True)
        elif governor == "powersave":
            new = self._resolve(pol, lo, relation_low=True)
        else:  # performance, and dynamic governors modelled as a busy system
            new = self._resolve(pol, hi, relation_low=False)
        self._change(pol, rt, new)

    def _change(self, pol: PolicyProfile, rt: _PolicyRuntime, new_khz: int) -> None:
        """Account time in the old state, then move to ``new_khz`` and update the visible files."""
        now = time.monotonic()
        st = self.state["policies"][pol.name]
        old = rt.cur_khz
        tis = st.setdefault("time_in_state_ticks", {})
        if str(old) in tis:
            tis[str(old)] += int((now - rt.changed_at_s) / TICK_S)
        if new_khz != old:
            trans = st.setdefault("trans", {})
            key = f"{old}>{new_khz}"
            trans[key] = trans.get(key, 0) + 1
        rt.changed_at_s = now
        rt.cur_khz = new_khz
        base = f"{CPUFREQ_DIR}/{pol.name}"
        self._set(f"{base}/scaling_cur_freq", new_khz)
        self._set(f"{base}/cpuinfo_cur_freq", rt.lying.hardware_khz(new_khz))
        if self._get(f"{base}/scaling_governor") == "userspace":
            self._set(f"{base}/scaling_setspeed", new_khz)
        self._render_stats(pol)

    def _render_stats(self, pol: PolicyProfile) -> None:
        if not pol.has_frequency_table:
            return
        st = self.state["policies"][pol.name]
        tis = st.get("time_in_state_ticks", {})
        base = f"{CPUFREQ_DIR}/{pol.name}/stats"
        lines = [f"{f} {tis.get(str(f), 0)}" for f in reversed(pol.frequencies_khz)]
        self._set(f"{base}/time_in_state", "\n".join(lines))
        trans = st.get("trans", {})
        self._set(f"{base}/total_trans", sum(trans.values()))
        self._set(f"{base}/trans_table", _trans_table_text(pol.frequencies_khz, trans))

    def _write_devfreq(self, rel: str, value: str) -> None:
        dev = next((d for d in self.profile.devfreq if f"/devfreq/{d.name}/" in rel), None)
        if dev is None:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", rel)
        base = f"{dev.device_path}/devfreq/{dev.name}"
        leaf = rel.split(f"/devfreq/{dev.name}/", 1)[1]  # reached via sys/class/devfreq or the device path
        governor = self._get(f"{base}/governor")
        lo, hi = int(self._get(f"{base}/min_freq")), int(self._get(f"{base}/max_freq"))
        if leaf == "governor":
            if value not in dev.governors:
                raise OSError(errno.EINVAL, "Invalid argument")
            self._set(f"{base}/governor", value)
            if value == "powersave":
                self._devfreq_change(dev, lo)
            elif value != "userspace":  # performance, and dynamic governors modelled as a busy GPU
                self._devfreq_change(dev, hi)
            return
        if leaf == "userspace/set_freq":
            if governor != "userspace":
                raise OSError(errno.EINVAL, "Invalid argument")
            f = min(max(_parse_khz(value), lo), hi)
            self._set(f"{base}/userspace/set_freq", f)
            above = [x for x in dev.frequencies_hz if x >= f]
            self._devfreq_change(dev, min(above) if above else dev.frequencies_hz[-1])
            return
        if leaf in ("min_freq", "max_freq"):
            f = _parse_khz(value)
            new_lo, new_hi = (f, hi) if leaf == "min_freq" else (lo, f)
            if new_lo > new_hi:
                raise OSError(errno.EINVAL, "Invalid argument")
            self._set(f"{base}/{leaf}", f)
            cur = int(self._get(f"{base}/cur_freq"))
            self._devfreq_change(dev, min(max(cur, new_lo), new_hi) if governor != "performance" else new_hi)
            return
        raise PermissionError(errno.EACCES, "Permission denied")

    def _devfreq_change(self, dev: DevfreqProfile, new_hz: int) -> None:
        base = f"{dev.device_path}/devfreq/{dev.name}"
        old = int(self._get(f"{base}/cur_freq"))
        st = self.state["devfreq"][dev.name]
        if new_hz != old:
            key = f"{old}>{new_hz}"
            st["trans"][key] = st["trans"].get(key, 0) + 1
        self._set(f"{base}/cur_freq", new_hz)
        self._set(f"{base}/target_freq", new_hz)
        self._update_devfreq_stats(dev.name, new_hz)

    def _update_devfreq_stats(self, name: str, cur_hz: int) -> None:
        dev = next(d for d in self.profile.devfreq if d.name == name)
        st = self.state["devfreq"][name]
        freqs = dev.frequencies_hz
        header = "     From  :   To\n           :" + "".join(f"{f:>10}" for f in freqs) + "   time(ms)"
        rows = [header]
        for a in freqs:
            mark = "*" if a == cur_hz else " "
            counts = "".join(f"{st['trans'].get(f'{a}>{b}', 0):>10}" for b in freqs)
            rows.append(f"{mark}{a:>10}:{counts}{0:>10}")
        rows.append(f"Total transition : {sum(st['trans'].values())}")
        self._set(f"{dev.device_path}/devfreq/{name}/trans_stat", "\n".join(rows))

    # ---- controls for tests and users ---------------------------------------------------------
    def set_lying(
        self,
        policy: str | None = None,
        hw_floor_khz: int | None = None,
        hw_cap_khz: int | None = None,
        hw_override_khz: int | None = None,
    ) -> None:
        """Make the hardware clock deviate from requests (all policies when ``policy`` is None).

        A cap below the current request also raises the Raspberry Pi throttle flags (``0x2|0x4`` now,
        ``0x20000|0x40000`` sticky); clearing every mode clears the current bits, not the sticky ones.
        """
        with self._locked():
            lying = Lying(hw_floor_khz=hw_floor_khz, hw_cap_khz=hw_cap_khz, hw_override_khz=hw_override_khz)
            throttling = False
            for pol in self.profile.policies:
                if policy is not None and pol.name != policy:
                    continue
                rt = self._runtime(pol.name)
                rt.lying = lying
                self._store_runtime_keep_stats(pol.name, rt)
                hw = lying.hardware_khz(rt.cur_khz)
                self._set(f"{CPUFREQ_DIR}/{pol.name}/cpuinfo_cur_freq", hw)
                throttling = throttling or hw < rt.cur_khz
            flags = int(self.state.get("throttled", 0))
            if throttling:
                flags |= 0x2 | 0x4 | 0x20000 | 0x40000
            else:
                flags &= ~0xF
            self.state["throttled"] = flags

    def set_throttled_flags(self, value: int) -> None:
        """Set the raw ``vcgencmd get_throttled`` value (e.g. ``0x50005``)."""
        with self._locked():
            self.state["throttled"] = int(value)

    def set_temperature(self, zone_type: str, temp_c: float) -> None:
        """Set a thermal zone's temperature (written in millidegrees, as the kernel does)."""
        for i, zone in enumerate(self.profile.thermal_zones):
            if zone.type == zone_type:
                self._set(f"{THERMAL_DIR}/thermal_zone{i}/temp", round(temp_c * 1000))
                return
        raise BadInputError(f"{self.root}: no thermal zone of type {zone_type!r}")

    def hardware_khz(self, policy: str) -> int:
        """The clock the fake hardware runs at."""
        rt = self._runtime(policy)
        return rt.lying.hardware_khz(rt.cur_khz)


def _parse_khz(value: str) -> int:
    try:
        f = int(value.strip())
    except ValueError:
        raise OSError(errno.EINVAL, "Invalid argument") from None
    if f < 0:
        raise OSError(errno.EINVAL, "Invalid argument")
    return f


def _trans_table_text(freqs: list[int], trans: dict[str, int]) -> str:
    """Render ``stats/trans_table`` in the kernel's layout."""
    lines = ["   From  :    To", "         : " + " ".join(f"{f:>9}" for f in freqs)]
    for a in freqs:
        counts = " ".join(f"{trans.get(f'{a}>{b}', 0):>9}" for b in freqs)
        lines.append(f"{a:>9}: {counts}")
    return "\n".join(lines)
