"""The state file that marks a directory as an emulated board (a fake-kernel tree).

The fake kernel (:mod:`devices.fake.kernel`) keeps its state in this file at the tree's root and the fake
board tools (:mod:`devices.fake.tools`) read it; :func:`devices.sysroot.open_sysfs` looks for it to give a
tree the kernel's write semantics. It lives in its own module so that all three share one name without
importing each other.
"""

from __future__ import annotations

import os
from pathlib import Path

#: Name of the marker (state) file at the root of a fake-kernel tree.
FAKE_KERNEL_MARKER = ".testbed-fake-kernel.json"


def is_fake_tree(root: str | os.PathLike[str]) -> bool:
    """True when ``root`` holds a fake kernel's marker file (never raises)."""
    return (Path(root) / FAKE_KERNEL_MARKER).is_file()
