"""The fake kernel enforces cpufreq/devfreq write semantics like the real kernel."""

from __future__ import annotations

import time

import pytest

from devices.errors import BadInputError, HardwareError, PermissionDeniedError
from devices.fake.kernel import FakeKernel
from devices.sysroot import open_sysfs

P0 = "sys/devices/system/cpu/cpufreq/policy0"


def test_layout_has_policy_files_and_cpu_symlinks(make_board):
    k = make_board("rpi4")
    s = k.sysfs()
    assert s.read(f"{P0}/scaling_available_frequencies") == "600000 750000 1000000 1500000"
    assert s.read(f"{P0}/related_cpus") == "0 1 2 3"
    for cpu in range(4):
        link = k.root / f"sys/devices/system/cpu/cpu{cpu}/cpufreq"
        assert link.is_symlink() and link.resolve() == (k.root / P0).resolve()
    assert (k.root / "proc/device-tree/model").read_bytes().endswith(b"\x00")


def test_unknown_governor_is_rejected(make_board):
    s = make_board("rpi4").sysfs()
    with pytest.raises(HardwareError, match="Invalid argument"):
        s.write(f"{P0}/scaling_governor", "turbo")
    assert s.read(f"{P0}/scaling_governor") == "ondemand"


def test_setspeed_outside_userspace_is_einval(make_board):
    s = make_board("rpi4").sysfs()
    assert s.read(f"{P0}/scaling_setspeed") == "<unsupported>"
    with pytest.raises(HardwareError, match="Invalid argument"):
        s.write(f"{P0}/scaling_setspeed", 750000)


def test_setspeed_rounds_up_to_a_listed_frequency_and_clamps(make_board):
    s = make_board("rpi4").sysfs()
    s.write(f"{P0}/scaling_governor", "userspace")
    s.write(f"{P0}/scaling_setspeed", 700000)  # RELATION_L: lowest listed >= 700000
    assert s.read_int(f"{P0}/scaling_cur_freq") == 750000
    s.write(f"{P0}/scaling_setspeed", 100)  # below min: clamped to min
    assert s.read_int(f"{P0}/scaling_cur_freq") == 600000
    s.write(f"{P0}/scaling_max_freq", 1000000)
    s.write(f"{P0}/scaling_setspeed", 1500000)  # above max: clamped to max
    assert s.read_int(f"{P0}/scaling_cur_freq") == 1000000
    # under userspace, reading setspeed returns the current frequency
    assert s.read_int(f"{P0}/scaling_setspeed") == 1000000


def test_a_frequency_change_rewrites_only_the_files_it_changes(make_board):
    """Setting the frequency a policy already runs at touches no file (a rewrite with truncation flushes on
    ext4: 3.6 ms a file, 70-90 ms a frequency change); a real change gives the new value, shorter or longer
    than the old, and keeps each file's mode."""
    from devices.cpufreq import get_policy

    board = make_board("rpi4")
    policy = get_policy(board.sysfs(), "policy0")
    policy.set_frequency(1500000)
    root = board.root / P0

    def mtimes() -> dict[str, int]:
        return {str(q.relative_to(root)): q.stat().st_mtime_ns for q in root.rglob("*") if q.is_file()}

    before = mtimes()
    policy.set_frequency(1500000)
    assert mtimes() == before
    policy.set_frequency(600000)
    assert (root / "scaling_cur_freq").read_text() == "600000\n"  # shorter value: no stale digit left
    policy.set_frequency(1500000)
    assert (root / "scaling_cur_freq").read_text() == "1500000\n"
    with pytest.raises(PermissionDeniedError):
        board.sysfs().write(f"{P0}/scaling_cur_freq", 1000000)  # still read-only after the in-place rewrite


def test_limits_keep_min_below_max(make_board):
    s = make_board("rpi4").sysfs()
    s.write(f"{P0}/scaling_max_freq", 750000)
    with pytest.raises(HardwareError, match="Invalid argument"):
        s.write(f"{P0}/scaling_min_freq", 1000000)
    assert s.read_int(f"{P0}/scaling_min_freq") == 600000
    s.write(f"{P0}/scaling_max_freq", 9_999_999)  # clamped to cpuinfo_max_freq
    assert s.read_int(f"{P0}/scaling_max_freq") == 1500000


def test_limit_change_retargets_userspace_setspeed(make_board):
    s = make_board("rpi4").sysfs()
    s.write(f"{P0}/scaling_governor", "userspace")
    s.write(f"{P0}/scaling_setspeed", 1500000)
    s.write(f"{P0}/scaling_max_freq", 1000000)
    assert s.read_int(f"{P0}/scaling_cur_freq") == 1000000
    s.write(f"{P0}/scaling_max_freq", 1500000)  # the stored setspeed comes back
    assert s.read_int(f"{P0}/scaling_cur_freq") == 1500000


def test_powersave_and_performance_go_to_limits(make_board):
    s = make_board("rpi4").sysfs()
    s.write(f"{P0}/scaling_governor", "powersave")
    assert s.read_int(f"{P0}/scaling_cur_freq") == 600000
    s.write(f"{P0}/scaling_governor", "performance")
    assert s.read_int(f"{P0}/scaling_cur_freq") == 1500000


def test_stats_follow_changes_and_reset(make_board):
    s = make_board("rpi4").sysfs()
    s.write(f"{P0}/scaling_governor", "userspace")
    time.sleep(0.05)
    s.write(f"{P0}/scaling_setspeed", 600000)
    s.write(f"{P0}/scaling_setspeed", 1000000)
    tis = dict(line.split() for line in s.read(f"{P0}/stats/time_in_state").splitlines())
    assert set(tis) == {"600000", "750000", "1000000", "1500000"}
    assert int(tis["1500000"]) >= 4  # at least 40 ms at the start frequency, in 10 ms ticks
    assert s.read_int(f"{P0}/stats/total_trans") == 2
    table = s.read(f"{P0}/stats/trans_table").splitlines()
    row_1500 = next(line for line in table if line.strip().startswith("1500000:"))
    assert row_1500.split()[1:] == ["1", "0", "0", "0"]  # 1500000 -> 600000 once
    s.write(f"{P0}/stats/reset", 1)
    assert s.read_int(f"{P0}/stats/total_trans") == 0


def test_read_only_files_refuse_writes(make_board):
    s = make_board("rpi4").sysfs()
    with pytest.raises(PermissionDeniedError, match="cpuinfo_max_freq: permission denied"):
        s.write(f"{P0}/cpuinfo_max_freq", 1)


def test_state_is_shared_between_openers(make_board):
    k = make_board("rpi4")
    open_sysfs(k.root).write(f"{P0}/scaling_governor", "powersave")
    other = open_sysfs(k.root)
    other.write(f"{P0}/scaling_governor", "userspace")
    other.write(f"{P0}/scaling_setspeed", 750000)
    assert FakeKernel.load(k.root).hardware_khz("policy0") == 750000


def test_lying_modes_change_only_the_hardware_clock(make_board):
    k = make_board("rpi5")
    s = k.sysfs()
    s.write(f"{P0}/scaling_governor", "userspace")
    k.set_lying(hw_floor_khz=1800000)
    s.write(f"{P0}/scaling_setspeed", 1500000)
    assert s.read_int(f"{P0}/scaling_cur_freq") == 1500000
    assert s.read_int(f"{P0}/cpuinfo_cur_freq") == 1800000
    k.set_lying(hw_override_khz=2256000)  # Pi 5 soft throttling raised the clock
    assert s.read_int(f"{P0}/cpuinfo_cur_freq") == 2256000


def test_throttling_cap_sets_pi_flags(make_board):
    k = make_board("rpi4")
    k.set_lying(hw_cap_khz=1000000)
    assert FakeKernel.load(k.root).state["throttled"] & 0x4
    k.set_lying()  # clear: the "now" bits go, the sticky ones stay
    flags = FakeKernel.load(k.root).state["throttled"]
    assert flags & 0xF == 0 and flags & 0x40000


def test_devfreq_semantics(make_board):
    k = make_board("jetson-nano")
    s = k.sysfs()
    base = "sys/class/devfreq/57000000.gpu"
    with pytest.raises(HardwareError):
        s.write(f"{base}/userspace/set_freq", 307200000)  # not under userspace
    with pytest.raises(HardwareError):
        s.write(f"{base}/governor", "bogus")
    s.write(f"{base}/governor", "userspace")
    s.write(f"{base}/userspace/set_freq", 300000000)  # snaps up to a listed frequency
    assert s.read_int(f"{base}/cur_freq") == 307200000
    assert "Total transition : 1" in s.read(f"{base}/trans_stat")


def test_create_refuses_a_foreign_non_empty_directory(tmp_path):
    (tmp_path / "x").write_text("user data")
    with pytest.raises(BadInputError, match="not empty"):
        FakeKernel.create(tmp_path, "rpi4")


def test_load_rejects_a_plain_directory(tmp_path):
    with pytest.raises(BadInputError, match="not an emulated board"):
        FakeKernel.load(tmp_path)
