"""The board detector: which bundled profile this machine (or emulated tree) is.

Raspberry Pi and Jetson boards name themselves in the device tree; an x86 machine with
``intel_pstate``/``acpi-cpufreq`` or RAPL is a laptop. ``--board NAME`` overrides detection.

Precedence, first match wins: a profile's ``model_contains`` in ``/proc/device-tree/model`` (the most
specific signal; checked for every profile before any ``compatible``), then ``compatible_contains`` in
``/proc/device-tree/compatible``, then the laptop heuristics. This is the only detector: the board
(:mod:`devices.board`) and meter detection (:mod:`devices.meters.detect`) both ask it.
"""

from __future__ import annotations

from devices.board_profile import BoardProfile, available_profiles, load_profile
from devices.errors import BadInputError
from devices.sysfs import Sysfs


def _read_dt(sysfs: Sysfs, leaf: str) -> list[str]:
    p = sysfs.path(f"proc/device-tree/{leaf}")
    try:
        raw = p.read_bytes()
    except OSError:
        return []
    return [s.decode("utf-8", "replace") for s in raw.split(b"\x00") if s]


def detect_profile_name(sysfs: Sysfs) -> str | None:
    """The bundled profile that matches this board, or ``None`` when nothing matches."""
    models = _read_dt(sysfs, "model")
    compatible = _read_dt(sysfs, "compatible")
    profiles = [load_profile(n) for n in available_profiles()]
    for prof in profiles:
        if any(key in m for key in prof.detect.model_contains for m in models):
            return prof.name
    for prof in profiles:
        if any(key in c for key in prof.detect.compatible_contains for c in compatible):
            return prof.name
    driver = sysfs.read_optional("sys/devices/system/cpu/cpufreq/policy0/scaling_driver")
    if driver in ("intel_pstate", "intel_cpufreq", "acpi-cpufreq", "amd-pstate", "amd-pstate-epp"):
        return "laptop"
    if sysfs.exists("sys/class/powercap/intel-rapl:0"):
        return "laptop"
    return None


def resolve_profile(sysfs: Sysfs, board: str | None) -> BoardProfile:
    """``--board`` when given (name or TOML path), else the detected profile.

    Raises :class:`BadInputError` when detection finds nothing.
    """
    if board and board != "auto":
        return load_profile(board)
    name = detect_profile_name(sysfs)
    if name is None:
        model = " ".join(_read_dt(sysfs, "model")) or "unknown model"
        raise BadInputError(
            f"cannot detect the board ({model}); pass --board with one of: {', '.join(available_profiles())}"
        )
    return load_profile(name)
