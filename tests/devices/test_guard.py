"""Save and restore: normal exit, exceptions, signals, SIGKILL + restore, held changes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from devices.cpufreq import get_policy
from devices.errors import BadInputError, HardwareError
from devices.guard import BoardGuard, restore_from_file, state_file_for

P0 = "sys/devices/system/cpu/cpufreq/policy0"


def _snapshot(sysfs, policy="policy0"):
    p = get_policy(sysfs, policy)
    return (p.governor, p.min_khz, p.max_khz, p.cur_khz)


def test_normal_exit_restores_everything(make_board):
    k = make_board("jetson-orin-nano")
    s = k.sysfs()
    s.write(f"{P0}/scaling_max_freq", 1420800)  # the user's own limit must come back
    before = {n: _snapshot(s, n) for n in ("policy0", "policy4")}
    with BoardGuard(s) as g:
        g.set_cpu_frequency(get_policy(s, "policy0"), 576000)
        g.set_cpu_frequency(get_policy(s, "policy4"), 883200)
        g.set_devfreq_frequency("gpu", 408000000)
        saved = json.loads(g.path.read_text())
        assert set(saved["policies"]) == {"policy0", "policy4"}
        assert saved["policies"]["policy0"]["max_khz"] == 1420800
    assert {n: _snapshot(s, n) for n in ("policy0", "policy4")} == before
    assert s.read("sys/class/devfreq/17000000.ga10b/governor") == "nvhost_podgov"
    assert not g.path.exists()


def test_exception_restores(make_board):
    k = make_board("rpi4")
    s = k.sysfs()
    before = _snapshot(s)
    with pytest.raises(RuntimeError, match="boom"), BoardGuard(s) as g:
        g.set_cpu_frequency(get_policy(s, "policy0"), 600000)
        raise RuntimeError("boom")
    assert _snapshot(s) == before


def test_userspace_setspeed_is_restored(make_board):
    k = make_board("rpi4")
    s = k.sysfs()
    get_policy(s, "policy0").set_frequency(1000000)  # the user's own userspace setting
    with BoardGuard(s) as g:
        g.set_cpu_frequency(get_policy(s, "policy0"), 600000)
    p = get_policy(s, "policy0")
    assert p.governor == "userspace" and p.cur_khz == 1000000


def test_hold_keeps_changes_and_restore_undoes_them(make_board):
    k = make_board("rpi4")
    s = k.sysfs()
    before = _snapshot(s)
    with BoardGuard(s, hold=True) as g:
        g.set_cpu_frequency(get_policy(s, "policy0"), 750000)
    assert get_policy(s, "policy0").cur_khz == 750000
    # a second held change keeps the *original* state in the file
    with BoardGuard(s, hold=True) as g2:
        g2.set_cpu_frequency(get_policy(s, "policy0"), 600000)
    assert json.loads(g2.path.read_text())["policies"]["policy0"]["governor"] == "ondemand"
    assert restore_from_file(s, g2.path) == ["policy0"]
    assert _snapshot(s) == before


def test_failed_held_change_rolls_back_only_itself(make_board):
    k = make_board("jetson-orin-nano")
    s = k.sysfs()
    with BoardGuard(s, hold=True) as g:
        g.set_cpu_frequency(get_policy(s, "policy0"), 576000)
    mid = _snapshot(s, "policy4")
    with pytest.raises(BadInputError), BoardGuard(s, hold=True) as g2:
        g2.set_cpu_frequency(get_policy(s, "policy4"), 883200)
        g2.set_cpu_frequency(get_policy(s, "policy0"), 123)  # invalid: the whole command fails
    assert _snapshot(s, "policy4") == mid  # this command's change is undone
    assert get_policy(s, "policy0").cur_khz == 576000  # the earlier held change survives
    data = json.loads(g2.path.read_text())
    assert set(data["policies"]) == {"policy0"} and data["hold"]


def test_second_guard_on_the_same_board_is_refused(make_board):
    k = make_board("rpi4")
    s = k.sysfs()
    with BoardGuard(s), pytest.raises(BadInputError, match="being changed by pid"):
        BoardGuard(s).__enter__()


def test_failed_restore_keeps_the_state_file(make_board):
    k = make_board("rpi4")
    s = k.sysfs()
    with BoardGuard(s, hold=True) as g:
        g.set_cpu_frequency(get_policy(s, "policy0"), 600000)
    (k.root / P0 / "scaling_governor").chmod(0o444)  # the kernel now refuses the write
    with pytest.raises(HardwareError, match="restore incomplete"):
        restore_from_file(s, g.path)
    assert g.path.exists()


def test_corrupt_state_file_is_a_clear_error(make_board):
    k = make_board("rpi4")
    path = state_file_for(k.sysfs())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{not json")
    with pytest.raises(BadInputError, match="corrupt board state file"):
        restore_from_file(k.sysfs(), path)


CHILD = textwrap.dedent(
    """
    import sys, time
    from devices.sysroot import open_sysfs
    from devices.cpufreq import get_policy
    from devices.guard import BoardGuard
    s = open_sysfs(sys.argv[1])
    with BoardGuard(s) as g:
        g.set_cpu_frequency(get_policy(s, "policy0"), 600000)
        print("changed", flush=True)
        time.sleep(60)
    """
)


def _start_child(root: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "changed"
    return proc


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_signals_restore(make_board, sig):
    k = make_board("rpi4")
    s = k.sysfs()
    before = _snapshot(s)
    proc = _start_child(k.root)
    assert get_policy(s, "policy0").cur_khz == 600000
    proc.send_signal(sig)
    proc.wait(timeout=30)
    assert _snapshot(s) == before
    assert not state_file_for(s).exists()


def test_sigkill_then_board_restore(make_board):
    k = make_board("rpi4")
    s = k.sysfs()
    before = _snapshot(s)
    proc = _start_child(k.root)
    proc.kill()
    proc.wait(timeout=30)
    assert get_policy(s, "policy0").cur_khz == 600000  # left changed: nothing could run
    out = subprocess.run(
        [sys.executable, "-m", "testbed", "board", "restore", "--sysfs-root", str(k.root)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "restored policy0" in out.stdout
    assert _snapshot(s) == before


def test_sigkill_then_next_start_recovers(make_board):
    k = make_board("rpi4")
    s = k.sysfs()
    before = _snapshot(s)
    proc = _start_child(k.root)
    proc.kill()
    proc.wait(timeout=30)
    with BoardGuard(s) as g:
        assert g.recovered == ["policy0"]
        assert _snapshot(s) == before  # recovered before anything new happens
        g.set_cpu_frequency(get_policy(s, "policy0"), 750000)
    assert _snapshot(s) == before
