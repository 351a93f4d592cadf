"""cpufreq control through the real code paths against emulated boards."""

from __future__ import annotations

import builtins

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices.commands import CommandRunner
from devices.cpufreq import get_policy, list_policies, parse_cpu_list, parse_measure_clock
from devices.errors import BadInputError, PermissionDeniedError, UnsupportedError
from devices.sysfs import Sysfs


class RecordingSysfs(Sysfs):
    """A Sysfs over a fake tree that also records the order of writes."""

    def __init__(self, inner: Sysfs) -> None:
        super().__init__(inner.root, write_hook=inner._write_hook)
        self.writes: list[tuple[str, str]] = []

    def write(self, rel: str, value: str | int) -> None:
        self.writes.append((rel.rsplit("/", 1)[-1], str(value)))
        super().write(rel, value)


@given(st.lists(st.integers(0, 255), min_size=1, max_size=20))
def test_parse_cpu_list_round_trips_ranges(cpus):
    expected = sorted(set(cpus))
    text = ",".join(str(c) for c in cpus)
    assert parse_cpu_list(text) == expected
    assert parse_cpu_list(" ".join(str(c) for c in cpus)) == expected


def test_parse_cpu_list_ranges_and_errors():
    assert parse_cpu_list("0-1,4-5") == [0, 1, 4, 5]
    with pytest.raises(ValueError):
        parse_cpu_list("3-1")


def test_two_clusters_are_enumerated(make_board):
    k = make_board("jetson-orin-nano")
    policies = list_policies(k.sysfs())
    assert [(p.name, p.cpus) for p in policies] == [("policy0", [0, 1, 2, 3]), ("policy4", [4, 5])]
    assert all(p.driver == "tegra194" for p in policies)


def test_set_with_userspace_reads_back(make_board):
    k = make_board("rpi4")
    p = get_policy(k.sysfs(), "policy0")
    rb = p.set_frequency(750000)
    assert rb.method == "userspace" and not rb.mismatch
    assert p.governor == "userspace" and p.cur_khz == 750000 and rb.hardware_khz == 750000


def test_big_little_policies_are_independent(make_board):
    k = make_board("jetson-orin-nano")
    s = k.sysfs()
    get_policy(s, "policy4").set_frequency(576000)
    assert get_policy(s, "policy0").cur_khz == 1510400
    assert get_policy(s, "policy4").cur_khz == 576000


@pytest.mark.parametrize(("start", "target"), [(4200000, 1600000), (1600000, 3200000)])
def test_min_max_pin_without_userspace_uses_safe_order(make_board, start, target):
    k = make_board("laptop")
    s = RecordingSysfs(k.sysfs())
    p = get_policy(s, "policy0")
    if start != 4200000:
        p.set_frequency(start)
    s.writes.clear()
    rb = p.set_frequency(target)
    assert rb.method == "min-max-pin"
    limit_writes = [w for w in s.writes if w[0] in ("scaling_min_freq", "scaling_max_freq")]
    going_up = target > start
    first = "scaling_max_freq" if going_up else "scaling_min_freq"
    assert limit_writes[0][0] == first
    assert p.min_khz == p.max_khz == target and p.cur_khz == target


def test_rejects_unlisted_frequency_without_writing(make_board):
    k = make_board("rpi4")
    s = RecordingSysfs(k.sysfs())
    with pytest.raises(BadInputError, match="not an available frequency; choose one of 600000"):
        get_policy(s, "policy0").set_frequency(700000)
    assert s.writes == []


def test_tableless_driver_accepts_any_value_in_range(make_board):
    p = get_policy(make_board("laptop").sysfs(), "policy2")
    p.validate_frequency(1234000)
    with pytest.raises(BadInputError, match="outside the hardware range"):
        p.validate_frequency(5_000_000)


def test_unknown_policy_lists_the_real_ones(make_board):
    with pytest.raises(BadInputError, match="unknown policy 'policy9'; this board has: policy0, policy4"):
        get_policy(make_board("jetson-orin-nano").sysfs(), "policy9")


def test_missing_cpufreq_directory(tmp_path):
    with pytest.raises(UnsupportedError, match="no cpufreq directory"):
        list_policies(Sysfs(tmp_path))


def test_lying_floor_is_flagged_as_mismatch(make_board):
    k = make_board("rpi5")
    k.set_lying(hw_floor_khz=1800000)
    rb = get_policy(k.sysfs(), "policy0").set_frequency(1500000)
    assert rb.mismatch and rb.hardware_khz == 1800000
    assert any("hardware runs at 1800000 kHz" in w for w in rb.warnings)


def test_vcgencmd_is_preferred_on_a_pi(make_board):
    k = make_board("rpi4")
    k.set_lying(hw_cap_khz=1000000)
    p = get_policy(k.sysfs(), "policy0", CommandRunner(k.root))
    rb = p.set_frequency(1500000)
    assert rb.hardware_source == "vcgencmd" and rb.hardware_khz == 1000000 and rb.mismatch


def test_measure_clock_parser():
    assert parse_measure_clock("frequency(48)=1500398464\n") == 1500398464
    assert parse_measure_clock("error=1 error_msg=...") is None


def test_permission_denied_names_the_file_and_the_fix(make_board, monkeypatch):
    """Root ignores file modes, so deny access the way an unprivileged user meets it: at open()."""
    k = make_board("rpi4")
    plain = Sysfs(k.root)  # a real, non-fake tree write path
    real_open = builtins.open

    def deny(path, mode="r", *args, **kwargs):
        if "scaling_governor" in str(path) and "w" in mode:
            raise PermissionError(13, "Permission denied")
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", deny)
    with pytest.raises(PermissionDeniedError, match=r"scaling_governor: permission denied; .*udev rule"):
        plain.write("sys/devices/system/cpu/cpufreq/policy0/scaling_governor", "userspace")
