"""One object for a board: its sysfs tree, tools, profile, and a read-only snapshot of its state.

:class:`Board` is what the CLI and the agent use to inspect a board; changes go through
:class:`devices.guard.BoardGuard`, which saves and restores the state around them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from devices.board_profile import BoardProfile
from devices.commands import CommandRunner
from devices.cpufreq import CpufreqPolicy, get_policy, list_policies
from devices.detect import detect_profile_name, resolve_profile
from devices.devfreq import DevfreqDevice, list_devfreq
from devices.errors import BadInputError
from devices.sysfs import Sysfs
from devices.sysroot import open_sysfs
from devices.thermal import ThrottleState, read_nvpmodel, read_thermal_zones, read_throttle


class Board:
    """A board reached through ``sysfs`` (real or emulated) and its tools."""

    def __init__(self, sysfs: Sysfs, commands: CommandRunner | None = None, board: str | None = None) -> None:
        self.sysfs = sysfs
        self.commands = commands if commands is not None else CommandRunner(sysfs.root)
        self._board_arg = board
        self._profile: BoardProfile | None = None

    @classmethod
    def open(cls, root: str | os.PathLike[str] = "/", board: str | None = None) -> Board:
        """Open the board whose sysfs lives at ``root`` (``/`` for this machine)."""
        return cls(open_sysfs(Path(root)), board=board)

    @property
    def profile(self) -> BoardProfile:
        """The ``--board`` profile or the detected one (:class:`BadInputError` if neither)."""
        if self._profile is None:
            self._profile = resolve_profile(self.sysfs, self._board_arg)
        return self._profile

    def profile_name(self) -> str | None:
        """Profile name without failing when detection finds nothing."""
        if self._board_arg and self._board_arg != "auto":
            return self.profile.name
        return detect_profile_name(self.sysfs)

    def policies(self) -> list[CpufreqPolicy]:
        return list_policies(self.sysfs, self.commands)

    def policy(self, name: str) -> CpufreqPolicy:
        return get_policy(self.sysfs, name, self.commands)

    def devfreq(self) -> list[DevfreqDevice]:
        return list_devfreq(self.sysfs)

    def throttle(self) -> ThrottleState | None:
        return read_throttle(self.commands)

    def level_frequencies(self, level: str) -> dict[str, int]:
        """``{policy: freq_khz}`` of a profile level (by name or index, 0 = fastest)."""
        if not self.profile.levels:
            raise BadInputError(f"profile {self.profile.name} defines no levels; use --policy/--freq-khz")
        return dict(self.profile.level(level).freq_khz)

    def snapshot(self) -> dict[str, Any]:
        """Frequencies, temperatures and throttle state now — recorded before and after each run."""
        freqs: dict[str, Any] = {}
        for p in self.policies():
            hw, src = p.hardware_khz()
            freqs[p.name] = {"cur_khz": p.cur_khz, "hardware_khz": hw, "hardware_source": src}
        throttle = self.throttle()
        return {
            "frequencies": freqs,
            "devfreq": {d.name: d.cur_hz for d in self.devfreq()},
            "thermal_c": {z.type: z.temp_c for z in read_thermal_zones(self.sysfs)},
            "throttle": throttle.to_dict() if throttle is not None else None,
        }

    def info(self) -> dict[str, Any]:
        """Everything ``testbed board info --json`` prints."""
        throttle = self.throttle()
        return {
            "sysfs_root": str(self.sysfs.root),
            "emulated": self.sysfs.is_emulated,
            "board": self.profile_name(),
            "policies": [p.info() for p in self.policies()],
            "devfreq": [d.info() for d in self.devfreq()],
            "thermal_zones": [z.to_dict() for z in read_thermal_zones(self.sysfs)],
            "throttle": throttle.to_dict() if throttle is not None else None,
            "nvpmodel": read_nvpmodel(self.commands),
        }
