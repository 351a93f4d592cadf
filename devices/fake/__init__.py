"""Fakes shipped in the package so that users can emulate a board and tests need no hardware.

:mod:`devices.fake.kernel` builds a sysfs tree for a board profile and enforces the kernel's write
semantics; :mod:`devices.fake.tools` answers ``vcgencmd`` and ``nvpmodel`` like the real tools.
"""
