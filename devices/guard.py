"""Save and restore a board's DVFS state around every change; one lock and one saved state per board.

Before the first change to a policy (or devfreq device) its whole state — governor, min, max and,
under ``userspace``, setspeed — is saved to the board's state file; the file always holds the state the
user had *before the testbed touched the board* (the first saved original wins). :class:`BoardGuard`
restores it on normal exit, on SIGINT, SIGTERM and SIGHUP, and on exceptions. After SIGKILL the file
survives: ``testbed board restore`` restores from it, and so does the next :class:`BoardGuard` to start.

The lock and the state file belong to the *board*, not to whoever changes it: they live in the board's
run directory (:func:`board_run_dir`), keyed by the sysfs root — ``/run/rt3-testbed`` for this machine,
``<root>/run/rt3-testbed`` for an emulated board, or ``$TESTBED_RUN_DIR/board-<hash of the root>`` —
so an agent started with sudo, a second agent with another ``--state-dir`` and a user's ``board set``
all meet the same lock. ``/run`` is emptied at boot, as the board's frequencies are.

A state file written by ``testbed board set`` is marked ``hold``: the user left the board changed on
purpose, so later guards do not undo it at start; they keep the original state and restore it when
they finish.

The owner of a state file is recorded as pid + process start time + boot id
(:class:`devices.procid.ProcessIdentity`), so a crashed owner whose pid was reused is still seen as gone.

Failure modes: another live process holding the board raises :class:`BadInputError` naming its pid; a
state file that is not valid JSON or not of the expected schema raises :class:`BadInputError`
("corrupt board state file", naming ``testbed board restore --to-defaults``); a restore that fails
keeps the state file so that ``testbed board restore`` can retry.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import json
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Literal, TextIO

from platformdirs import user_state_dir
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from devices.board_profile import BoardProfile
from devices.cpufreq import CpufreqPolicy, PolicyState, ReadBack, get_policy
from devices.devfreq import DevfreqState, get_devfreq
from devices.errors import BadInputError, HardwareError, PermissionDeniedError, TestbedError
from devices.procid import ProcessIdentity
from devices.sysfs import Sysfs

STATE_FORMAT = "testbed-board-state/1"
HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def default_state_dir() -> Path:
    """The user's testbed state directory (agent token, emulated trees); not where board state lives."""
    env = os.environ.get("TESTBED_STATE_DIR")
    return Path(env) if env else Path(user_state_dir("rt3-testbed"))


#: The machine-wide board directory for the real root, and the fallback when ``/run`` is not writable.
SYSTEM_RUN_DIR = Path("/run/rt3-testbed")
FALLBACK_RUN_DIR = Path(tempfile.gettempdir()) / "rt3-testbed"
STATE_NAME = "board-state.json"
LOCK_NAME = "board.lock"


def _root_digest(root: Path) -> str:
    return hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:12]


def _shared_dir(path: Path) -> Path | None:
    """``path``, created world-writable and sticky (like /tmp) so every user meets there; None if impossible."""
    try:
        if not path.is_dir():
            path.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(OSError):
                path.chmod(0o1777)
        return path if os.access(path, os.W_OK | os.X_OK) else None
    except OSError:
        return None


def board_run_dir(sysfs: Sysfs) -> Path:
    """The directory holding the board's lock and saved state (see the module text).

    ``$TESTBED_RUN_DIR/board-<hash of the root>`` when set; ``<root>/run/rt3-testbed`` for any root but
    ``/``; for ``/``: ``/run/rt3-testbed`` (created mode 1777 when possible), else ``$TMPDIR/rt3-testbed``.
    """
    env = os.environ.get("TESTBED_RUN_DIR")
    if env:
        return Path(env) / f"board-{_root_digest(sysfs.root)}"
    if sysfs.root.resolve() != Path("/"):
        return sysfs.root / "run" / "rt3-testbed"
    for candidate in (SYSTEM_RUN_DIR, FALLBACK_RUN_DIR):
        if _shared_dir(candidate) is not None:
            return candidate
    return SYSTEM_RUN_DIR  # creating it fails later with a permission error naming it


def state_file_for(sysfs: Sysfs, state_dir: Path | None = None) -> Path:
    """The state file of the board at ``sysfs``'s root (``state_dir`` is accepted for compatibility and
    ignored: the saved state belongs to the board, whoever changes it)."""
    del state_dir
    return board_run_dir(sysfs) / STATE_NAME


class _PolicyEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    governor: str = Field(min_length=1, max_length=64)
    min_khz: int = Field(ge=0, le=10**9)
    max_khz: int = Field(ge=0, le=10**9)
    setspeed_khz: int | None = Field(default=None, ge=0, le=10**9)


class _DevfreqEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    governor: str = Field(min_length=1, max_length=64)
    min_hz: int = Field(ge=0, le=10**12)
    max_hz: int = Field(ge=0, le=10**12)


class _StateFile(BaseModel):
    """The schema of a board state file (anything else is reported corrupt)."""

    model_config = ConfigDict(extra="ignore")
    format: Literal["testbed-board-state/1"]
    root: str = ""
    saved_unix_s: float = 0.0
    policies: dict[str, _PolicyEntry] = Field(default_factory=dict)
    devfreq: dict[str, _DevfreqEntry] = Field(default_factory=dict)
    hold: bool = False
    pid: int = Field(default=0, ge=0)
    pid_start_ticks: int | None = None
    owner: str = ""
    boot_id: str | None = None


def _corrupt(path: Path, why: str) -> BadInputError:
    return BadInputError(
        f"{path}: corrupt board state file ({why}); put the board profile's defaults back with "
        "`testbed board restore --to-defaults`, or delete the file"
    )


def read_state_file(path: Path) -> dict[str, Any] | None:
    """The saved state, ``None`` when absent; :class:`BadInputError` ("corrupt board state file") when it is
    not JSON or not of the state-file schema."""
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise BadInputError(f"{path}: cannot read the board state file: {exc.strerror}") from None
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise _corrupt(path, f"not JSON: {str(exc)[:120]}") from None
    if isinstance(data, dict) and "format" in data and data["format"] != STATE_FORMAT:
        raise _corrupt(path, f"format {str(data['format'])[:40]!r}, not {STATE_FORMAT}")
    try:
        state = _StateFile.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(x) for x in err["loc"]) or "top level"
        raise _corrupt(path, f"{where}: {err['msg']}") from None
    return state.model_dump()


def restore_defaults(sysfs: Sysfs, profile: BoardProfile) -> list[str]:
    """Put every policy and devfreq device of ``profile`` back to the profile's defaults (its default governor,
    the hardware's full range); the fallback when the saved state is lost or corrupt. Returns what was reset;
    :class:`HardwareError` naming what failed."""
    done: list[str] = []
    errors: list[str] = []
    for pp in profile.policies:
        try:
            pol = get_policy(sysfs, pp.name)
            pol.restore(PolicyState(pp.default_governor, pol.hw_min_khz, pol.hw_max_khz))
            done.append(pp.name)
        except TestbedError as exc:
            errors.append(str(exc))
    for dp in profile.devfreq:
        try:
            dev = get_devfreq(sysfs, dp.name)
            table = dev.available_hz
            lo, hi = (min(table), max(table)) if table else (min(dp.frequencies_hz), max(dp.frequencies_hz))
            dev.restore(DevfreqState(dp.default_governor, lo, hi))
            done.append(dev.name)
        except TestbedError as exc:
            errors.append(str(exc))
    if errors:
        raise HardwareError(f"reset to defaults incomplete: {'; '.join(errors)}")
    return done


def restore_from_file(sysfs: Sysfs, path: Path) -> list[str]:
    """Restore every saved policy/device from ``path`` and delete it; returns what was restored.

    On failure the file is kept and :class:`HardwareError` (or the sysfs error) is raised.
    """
    data = read_state_file(path)
    if data is None:
        return []
    restored: list[str] = []
    errors: list[str] = []
    for name, saved in data.get("policies", {}).items():
        try:
            get_policy(sysfs, name).restore(PolicyState.from_dict(saved))
            restored.append(name)
        except TestbedError as exc:
            errors.append(str(exc))
    for name, saved in data.get("devfreq", {}).items():
        try:
            get_devfreq(sysfs, name).restore(DevfreqState(**saved))
            restored.append(name)
        except TestbedError as exc:
            errors.append(str(exc))
    if errors:
        raise HardwareError(f"restore incomplete ({'; '.join(errors)}); state kept in {path}")
    path.unlink(missing_ok=True)
    return restored


class BoardGuard:
    """Context manager that owns a board's DVFS state while it is changed.

    ``hold=True`` (used by ``testbed board set``) leaves the changes in place on a normal exit and
    marks the state file so ``testbed board restore`` can undo them later; failures still restore.
    """

    def __init__(
        self,
        sysfs: Sysfs,
        state_dir: Path | None = None,
        owner: str = "testbed",
        hold: bool = False,
        install_signal_handlers: bool = True,
        log: TextIO | None = None,
        recover: bool = True,
    ) -> None:
        self.sysfs = sysfs
        self.path = state_file_for(sysfs, state_dir)
        self.owner = owner
        self.hold = hold
        self.install_signal_handlers = install_signal_handlers
        self.log = log if log is not None else sys.stderr
        self.recovered: list[str] = []
        self.recover = recover
        self._lock_fh: TextIO | None = None
        self._old_handlers: dict[int, Any] = {}
        self._active = False
        self._changed = False
        self._mutex = threading.RLock()
        # What this guard saw before its own first change, for rolling back a failed `board set`.
        self._session_policies: dict[str, PolicyState] = {}
        self._session_devfreq: dict[str, DevfreqState] = {}
        self._added_policies: set[str] = set()
        self._added_devfreq: set[str] = set()

    # ---- lifecycle ----------------------------------------------------------------------------
    def __enter__(self) -> BoardGuard:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except PermissionError:
            raise PermissionDeniedError(
                f"{self.path.parent}: cannot create the board's run directory; create it once with "
                f"`sudo install -d -m 1777 {self.path.parent}` or set TESTBED_RUN_DIR"
            ) from None
        self._acquire_lock()
        try:
            if self.recover:
                self._recover_stale()
        except BaseException:
            self._release_lock()
            raise
        self._active = True
        if self.install_signal_handlers and threading.current_thread() is threading.main_thread():
            for sig in HANDLED_SIGNALS:
                self._old_handlers[sig] = signal.signal(sig, self._on_signal)
        atexit.register(self._atexit)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if exc_type is None and self.hold:
                self._mark_hold()
            else:
                self._abort()
        finally:
            self._teardown()

    def _abort(self) -> list[str]:
        """Undo this guard's work: a full restore, or in ``hold`` mode a rollback of this session."""
        return self._rollback() if self.hold else self.restore()

    def _rollback(self) -> list[str]:
        """Put back what this guard changed, leaving earlier held changes (and their file) intact."""
        with self._mutex:
            rolled: list[str] = []
            for name, state in self._session_policies.items():
                get_policy(self.sysfs, name).restore(state)
                rolled.append(name)
            for name, dstate in self._session_devfreq.items():
                get_devfreq(self.sysfs, name).restore(dstate)
                rolled.append(name)
            data = read_state_file(self.path)
            if data is not None:
                for name in self._added_policies:
                    data["policies"].pop(name, None)
                for name in self._added_devfreq:
                    data["devfreq"].pop(name, None)
                if data["policies"] or data["devfreq"]:
                    data["hold"] = True
                    self._write(data)
                else:
                    self.path.unlink(missing_ok=True)
            return rolled

    def _teardown(self) -> None:
        self._active = False
        for sig, handler in self._old_handlers.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(sig, handler)
        self._old_handlers.clear()
        atexit.unregister(self._atexit)
        self._release_lock()

    def _acquire_lock(self) -> None:
        lock_path = self.path.with_name(LOCK_NAME)
        fh = open(lock_path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the guard's lifetime
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise BadInputError(
                f"the board at {self.sysfs.root} is being changed by {holder}; wait for it or stop it first"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} ({self.owner})")
        fh.flush()
        self._lock_fh = fh

    def _release_lock(self) -> None:
        if self._lock_fh is not None:
            with contextlib.suppress(OSError):
                self._lock_fh.truncate(0)
                fcntl.flock(self._lock_fh, fcntl.LOCK_UN)
            self._lock_fh.close()
            self._lock_fh = None

    def _recover_stale(self) -> None:
        """Restore from a state file left by a process that died (not one held on purpose)."""
        data = read_state_file(self.path)
        if data is None or data.get("hold"):
            return
        pid = int(data.get("pid", 0))
        owner = ProcessIdentity(pid, data.get("pid_start_ticks"), data.get("boot_id"))
        if pid != os.getpid() and owner.alive():
            return  # that very process still runs (cannot happen while we hold the lock unless copied)
        self.recovered = restore_from_file(self.sysfs, self.path)
        if self.recovered:
            self.log.write(
                f"testbed: restored {', '.join(self.recovered)} from {self.path} "
                f"(left changed by pid {pid}, which did not finish)\n"
            )

    # ---- saving -------------------------------------------------------------------------------
    def _load_or_new(self) -> dict[str, Any]:
        data = read_state_file(self.path)
        if data is None:
            data = {
                "format": STATE_FORMAT,
                "root": str(self.sysfs.root.resolve()),
                "saved_unix_s": time.time(),
                "policies": {},
                "devfreq": {},
                "hold": False,
            }
        me = ProcessIdentity.current()
        data["pid"] = me.pid
        data["pid_start_ticks"] = me.start_ticks
        data["owner"] = self.owner
        data["boot_id"] = me.boot_id
        return data

    def _write(self, data: dict[str, Any]) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)

    def save_policy(self, policy: CpufreqPolicy) -> None:
        """Save ``policy``'s state unless the file already holds it (the original state wins)."""
        with self._mutex:
            data = self._load_or_new()
            current = policy.state()
            self._session_policies.setdefault(policy.name, current)
            if policy.name not in data["policies"]:
                data["policies"][policy.name] = current.to_dict()
                self._added_policies.add(policy.name)
            data["hold"] = False  # while we change things, a crash must be recoverable
            self._write(data)

    def save_devfreq(self, name: str) -> None:
        with self._mutex:
            dev = get_devfreq(self.sysfs, name)
            data = self._load_or_new()
            current = dev.state()
            self._session_devfreq.setdefault(dev.name, current)
            if dev.name not in data["devfreq"]:
                data["devfreq"][dev.name] = current.to_dict()
                self._added_devfreq.add(dev.name)
            data["hold"] = False
            self._write(data)

    def _mark_hold(self) -> None:
        with self._mutex:
            data = read_state_file(self.path)
            if data is not None:
                data["hold"] = True
                self._write(data)

    # ---- changing -----------------------------------------------------------------------------
    def set_cpu_frequency(self, policy: CpufreqPolicy, freq_khz: int) -> ReadBack:
        """Validate, save, then set; a failure part-way restores before raising."""
        self._require_active()
        policy.validate_frequency(freq_khz)
        self.save_policy(policy)
        self._changed = True
        return policy.set_frequency(freq_khz)

    def set_devfreq_frequency(self, name: str, freq_hz: int) -> int | None:
        self._require_active()
        dev = get_devfreq(self.sysfs, name)
        dev.validate_frequency(freq_hz)
        self.save_devfreq(dev.name)
        self._changed = True
        return dev.set_frequency(freq_hz)

    def _require_active(self) -> None:
        if not self._active:
            raise RuntimeError("BoardGuard must be entered (use `with BoardGuard(...)`) before changing the board")

    def forget(self) -> None:
        """Drop the saved state without restoring it (after the board was reset to its defaults)."""
        with self._mutex:
            self.path.unlink(missing_ok=True)
            self._session_policies.clear()
            self._session_devfreq.clear()

    # ---- restoring ----------------------------------------------------------------------------
    def restore(self) -> list[str]:
        """Restore everything saved and delete the state file (kept if restoring fails)."""
        with self._mutex:
            return restore_from_file(self.sysfs, self.path)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        try:
            restored = self._abort()
            if restored:
                self.log.write(f"testbed: {signal.Signals(signum).name}: restored {', '.join(restored)}\n")
        except TestbedError as exc:
            self.log.write(f"testbed: {signal.Signals(signum).name}: {exc}\n")
        finally:
            self._teardown()
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        sys.exit(128 + signum)

    def _atexit(self) -> None:
        if self._active:
            with contextlib.suppress(TestbedError):
                self._abort()
