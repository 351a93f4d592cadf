"""Open the sysfs root a command names: the real kernel's ``/`` or an emulated board.

:class:`~devices.sysfs.Sysfs` itself knows nothing of emulation; this module is the one place that
decides, from the marker file a fake-kernel tree carries (:mod:`devices.fake.marker`), whether a root
gets plain file writes or the fake kernel's write semantics (:meth:`devices.fake.kernel.FakeKernel.sysfs`).

Failure modes: :class:`~devices.errors.BadInputError` when the root is not a directory or its fake-kernel
state is unreadable.
"""

from __future__ import annotations

import os
from pathlib import Path

from devices.errors import BadInputError
from devices.fake.marker import is_fake_tree
from devices.sysfs import Sysfs


def open_sysfs(root: str | os.PathLike[str] = "/") -> Sysfs:
    """A :class:`Sysfs` for ``root``; a fake-kernel tree gets the kernel's write semantics."""
    root_path = Path(root)
    if not root_path.is_dir():
        raise BadInputError(f"{root_path}: sysfs root is not a directory")
    if is_fake_tree(root_path):
        from devices.fake.kernel import FakeKernel  # only emulated roots pay for the kernel model

        return FakeKernel.load(root_path).sysfs()
    return Sysfs(root_path)
