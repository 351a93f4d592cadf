"""Every read and write of ``/sys`` (and ``/proc``) goes through :class:`Sysfs`.

The root is injectable: tests and emulation point it at a directory tree. A ``write_hook`` replaces file
writes with a model of the kernel (an emulated board installs one; :func:`devices.sysroot.open_sysfs`
decides which root gets which); this module knows nothing of what the hook models.

Failure modes: a missing file raises :class:`~devices.errors.BadInputError`; a permission problem
raises :class:`~devices.errors.PermissionDeniedError` naming the file and how to grant access; a value
the kernel rejects (``EINVAL``) raises :class:`~devices.errors.HardwareError`.
"""

from __future__ import annotations

import errno
import glob as _glob
import os
from collections.abc import Callable
from pathlib import Path

from devices.errors import BadInputError, HardwareError, PermissionDeniedError

#: ``hook(rel_path, text)`` performs a write instead of the file system; raises ``OSError`` like the kernel.
WriteHook = Callable[[str, str], None]


def permission_hint(rel_path: str) -> str:
    """What grants access to a sysfs file, for error messages."""
    if "powercap" in rel_path:
        return (
            "energy_uj is root-only since CVE-2020-8694; run as root or add a sysfs.conf line "
            "'mode class/powercap/intel-rapl:0/energy_uj = 0444'"
        )
    if "devfreq" in rel_path:
        return (
            "run as root (sudo), or install a udev rule such as "
            'SUBSYSTEM=="devfreq", ACTION=="add", RUN+="/bin/chgrp -R testbed /sys%p", '
            "RUN+=\"/bin/chmod -R g+w /sys%p\" and add your user to the 'testbed' group"
        )
    if "cpufreq" in rel_path:
        return (
            "run as root (sudo), or install a udev rule such as "
            'SUBSYSTEM=="cpu", ACTION=="add", RUN+="/bin/chgrp -R testbed '
            '/sys/devices/system/cpu/cpufreq", RUN+="/bin/chmod -R g+w /sys/devices/system/cpu/cpufreq" '
            "and add your user to the 'testbed' group"
        )
    return "run as root (sudo) or grant your group access to the file"


class Sysfs:
    """Reads and writes files below ``root`` as if ``root`` were ``/``.

    Paths are given relative to the root, e.g. ``"sys/devices/system/cpu/cpufreq"``; a leading ``/``
    is accepted and ignored. ``write_hook``, when given, performs writes instead of the file system
    (an emulated board's kernel model installs one).
    """

    def __init__(self, root: str | os.PathLike[str] = "/", write_hook: WriteHook | None = None) -> None:
        self.root = Path(root)
        self._write_hook = write_hook

    @property
    def is_emulated(self) -> bool:
        """True when writes go through a kernel model (an emulated board) rather than the file system."""
        return self._write_hook is not None

    def path(self, rel: str) -> Path:
        """The real path of ``rel`` below the root."""
        return self.root / rel.lstrip("/")

    def exists(self, rel: str) -> bool:
        return self.path(rel).exists()

    def is_dir(self, rel: str) -> bool:
        return self.path(rel).is_dir()

    def glob(self, pattern: str) -> list[str]:
        """Relative paths below the root matching ``pattern`` (sorted)."""
        base = str(self.root).rstrip("/")
        hits = sorted(_glob.glob(os.path.join(base, pattern.lstrip("/"))))
        return [os.path.relpath(h, base) for h in hits]

    def listdir(self, rel: str) -> list[str]:
        try:
            return sorted(os.listdir(self.path(rel)))
        except FileNotFoundError:
            raise BadInputError(f"{self.path(rel)}: directory not found") from None
        except PermissionError:
            raise PermissionDeniedError(f"{self.path(rel)}: permission denied; {permission_hint(rel)}") from None

    def read(self, rel: str) -> str:
        """The stripped text content of a file."""
        p = self.path(rel)
        try:
            with open(p, encoding="utf-8", errors="replace") as fh:
                return fh.read().strip()
        except FileNotFoundError:
            raise BadInputError(f"{p}: file not found") from None
        except PermissionError:
            raise PermissionDeniedError(f"{p}: permission denied; {permission_hint(rel)}") from None
        except OSError as exc:
            raise HardwareError(f"{p}: read failed: {os.strerror(exc.errno or 0)}") from None

    def read_optional(self, rel: str) -> str | None:
        """Like :meth:`read` but ``None`` when the file is absent or unreadable."""
        try:
            return self.read(rel)
        except (BadInputError, HardwareError):
            return None

    def read_int(self, rel: str) -> int:
        text = self.read(rel)
        try:
            return int(text)
        except ValueError:
            raise HardwareError(f"{self.path(rel)}: expected an integer, read {text!r}") from None

    def read_int_optional(self, rel: str) -> int | None:
        text = self.read_optional(rel)
        if text is None:
            return None
        try:
            return int(text)
        except ValueError:
            return None

    def write(self, rel: str, value: str | int) -> None:
        """Write ``value`` to a file, as ``echo value > file`` would.

        Raises :class:`HardwareError` when the kernel rejects the value (``EINVAL``/``EBUSY``),
        :class:`PermissionDeniedError` without write access, :class:`BadInputError` if absent.
        """
        text = str(value)
        p = self.path(rel)
        try:
            if self._write_hook is not None:
                self._write_hook(rel.lstrip("/"), text)
                return
            if not p.exists():
                raise FileNotFoundError(errno.ENOENT, "not found")
            with open(p, "w", encoding="utf-8") as fh:
                fh.write(text)
        except FileNotFoundError:
            raise BadInputError(f"{p}: file not found") from None
        except PermissionError:
            raise PermissionDeniedError(f"{p}: permission denied; {permission_hint(rel)}") from None
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise HardwareError(f"{p}: kernel rejected {text!r}: {reason}") from None
