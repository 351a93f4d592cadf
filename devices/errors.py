"""The project's exception types.

Every error a user can cause or fix is a :class:`TestbedError` whose message is one line saying what
is wrong and, where possible, what to do. The CLI prints that line and exits with ``exit_code``:
2 for bad input or usage (including missing permissions), 1 for failures at run time.
"""

from __future__ import annotations


class TestbedError(Exception):
    """Base of all errors the testbed raises on purpose."""

    __test__ = False  # not a pytest test class despite the name
    exit_code: int = 1


class BadInputError(TestbedError):
    """Input the user can correct: a wrong value, a malformed file, a missing file or directory."""

    exit_code = 2


class ParseError(BadInputError):
    """A file could not be parsed; the message names the file, the line and the problem."""

    def __init__(self, path: object, line: int | None, problem: str) -> None:
        where = f"{path}:{line}" if line is not None else f"{path}"
        super().__init__(f"{where}: {problem}")
        self.path = path
        self.line = line
        self.problem = problem


class PermissionDeniedError(BadInputError):
    """The process may not read or write a file; the message says what would grant access."""


class HardwareError(TestbedError):
    """The board did something unexpected at run time (write rejected, device vanished)."""

    exit_code = 1


class UnsupportedError(BadInputError):
    """The board or kernel lacks a feature the command needs."""
