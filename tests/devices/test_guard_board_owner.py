"""The board owns its lock and saved state: any changer meets them; owners are pid + start time; bad files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from devices.board_profile import load_profile
from devices.cpufreq import get_policy
from devices.errors import BadInputError
from devices.guard import BoardGuard, read_state_file, restore_defaults, restore_from_file, state_file_for
from devices.procid import ProcessIdentity, process_start_ticks


def _state(sysfs, policy="policy0"):
    p = get_policy(sysfs, policy)
    return (p.governor, p.min_khz, p.max_khz, p.cur_khz)


def test_guards_with_different_state_dirs_share_the_board_lock(make_board, tmp_path: Path) -> None:
    s = make_board("rpi4").sysfs()
    with BoardGuard(s, state_dir=tmp_path / "a"), pytest.raises(BadInputError, match="being changed by pid"):
        BoardGuard(s, state_dir=tmp_path / "b").__enter__()
    assert state_file_for(s, tmp_path / "a") == state_file_for(s, tmp_path / "b")


def test_first_saved_original_is_restored_whoever_changed_later(make_board, tmp_path: Path) -> None:
    s = make_board("rpi4").sysfs()
    before = _state(s)
    with BoardGuard(s, state_dir=tmp_path / "user", hold=True) as a:  # `board set` f600, left on purpose
        a.set_cpu_frequency(get_policy(s, "policy0"), 600000)
    with BoardGuard(s, state_dir=tmp_path / "agent") as b:  # an agent with another state directory
        assert not b.recovered  # a held change is not undone at start
        b.set_cpu_frequency(get_policy(s, "policy0"), 1000000)
    assert _state(s) == before  # the original from before f600 came back, not userspace 600000
    assert not state_file_for(s).exists()


def test_state_lives_under_the_boards_run_dir_or_testbed_run_dir(make_board, tmp_path, monkeypatch) -> None:
    k = make_board("rpi4")
    assert state_file_for(k.sysfs()).is_relative_to(k.root / "run")
    monkeypatch.setenv("TESTBED_RUN_DIR", str(tmp_path / "run"))
    assert state_file_for(k.sysfs()).is_relative_to(tmp_path / "run")


def test_reused_pid_does_not_block_crash_recovery(make_board) -> None:
    s = make_board("rpi4").sysfs()
    before = _state(s)
    with BoardGuard(s, hold=False) as g:
        g.set_cpu_frequency(get_policy(s, "policy0"), 600000)
        path = g.path
        data = json.loads(path.read_text())
        g._teardown()  # the owner "dies" without restoring (as after SIGKILL)
    # the dead owner's pid now belongs to another live process (here: our parent), started at another time
    other = os.getppid()
    data.update(pid=other, pid_start_ticks=(process_start_ticks(other) or 0) + 12345)
    path.write_text(json.dumps(data))
    assert not ProcessIdentity(other, data["pid_start_ticks"], data["boot_id"]).alive()
    with BoardGuard(s) as g2:
        assert g2.recovered == ["policy0"]
    assert _state(s) == before


def test_live_owner_with_matching_start_time_is_seen_alive() -> None:
    me = ProcessIdentity.current()
    assert me.alive()
    assert not ProcessIdentity(me.pid, (me.start_ticks or 0) + 1, me.boot_id).alive()
    assert not ProcessIdentity(me.pid, me.start_ticks, "another-boot").alive()


@pytest.mark.parametrize(
    "content",
    [
        {"format": "testbed-board-state/1", "policies": {"policy0": 5}},
        {"format": "testbed-board-state/1", "policies": [1, 2]},
        {"format": "testbed-board-state/1", "policies": {"policy0": {"governor": "x"}}},
        {"format": "testbed-board-state/1", "hold": "maybe", "pid": "12"},
        [1, 2, 3],
        {"format": "something-else"},
    ],
)
def test_wrong_schema_state_file_is_a_clean_corrupt_error(make_board, content) -> None:
    s = make_board("rpi4").sysfs()
    path = state_file_for(s)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content))
    with pytest.raises(BadInputError, match=r"corrupt board state file.*--to-defaults"):
        read_state_file(path)
    with pytest.raises(BadInputError, match="corrupt board state file"):
        restore_from_file(s, path)
    with pytest.raises(BadInputError, match="corrupt board state file"), BoardGuard(s):
        pass


def test_restore_defaults_puts_the_profile_defaults_back(make_board) -> None:
    k = make_board("rpi4")
    s = k.sysfs()
    get_policy(s, "policy0").set_frequency(600000)
    assert restore_defaults(s, load_profile("rpi4")) == ["policy0"]
    p = get_policy(s, "policy0")
    assert (p.governor, p.min_khz, p.max_khz) == (load_profile("rpi4").policies[0].default_governor,
                                                  p.hw_min_khz, p.hw_max_khz)  # fmt: skip


def _cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "testbed", *map(str, args)], capture_output=True, text=True,
                          check=False)  # fmt: skip


def test_cli_corrupt_state_then_restore_to_defaults(make_board) -> None:
    k = make_board("rpi4")
    s = k.sysfs()
    get_policy(s, "policy0").set_frequency(600000)
    path = state_file_for(s)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"format": "testbed-board-state/1", "policies": {"policy0": 5}}))
    res = _cli("board", "restore", "--sysfs-root", k.root)
    assert res.returncode == 2, res.stderr
    assert "corrupt board state file" in res.stderr and "--to-defaults" in res.stderr
    assert "internal error" not in res.stderr and "Traceback" not in res.stderr
    res = _cli("board", "restore", "--sysfs-root", k.root, "--to-defaults", "--board", "rpi4")
    assert res.returncode == 0, res.stderr
    assert get_policy(s, "policy0").governor != "userspace"
    assert not path.exists()
