"""Registries by name: the seams where users extend the testbed (meter schemes, battery models, strategies,
search algorithms).

One :class:`Registry` per kind maps a name to a value (a backend description, a factory, a planner) in
registration order, with a one-line summary for listings and optional aliases (old names that keep working).
It lives at the bottom of the layers, beside :mod:`devices.errors`, so the board side and the controller side
share one implementation.

Failure modes: :class:`~devices.errors.BadInputError` for an unknown name (the message lists the known ones),
for a name registered twice, and for removing a name that was never added.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from devices.errors import BadInputError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered name: its value and a one-line summary."""

    name: str
    summary: str
    value: T


class Registry(Generic[T]):
    """Names of one ``kind`` (e.g. ``"battery model"``) → values, in registration order.

    ``aliases`` maps old names to registered ones; they resolve everywhere but are not listed as names.
    """

    def __init__(self, kind: str, aliases: Mapping[str, str] | None = None) -> None:
        self.kind = kind
        self.aliases: dict[str, str] = dict(aliases or {})
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, value: T, summary: str = "") -> T:
        """Add ``value`` under ``name`` and return it; :class:`BadInputError` if the name is taken."""
        if name in self._entries or name in self.aliases:
            raise BadInputError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = Entry(name, summary, value)
        return value

    def add(self, name: str, summary: str = "") -> Callable[[T], T]:
        """Decorator form of :meth:`register`: ``@REGISTRY.add("name", "summary")``."""

        def decorate(value: T) -> T:
            return self.register(name, value, summary)

        return decorate

    def unregister(self, name: str) -> None:
        """Remove ``name``; :class:`BadInputError` if it is not registered."""
        if self._entries.pop(name, None) is None:
            raise BadInputError(f"no {self.kind} {name!r} is registered")

    def canonical(self, name: str) -> str:
        """``name`` with an alias resolved (unchanged otherwise)."""
        return self.aliases.get(name, name)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.canonical(name) in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def entry(self, name: str) -> Entry[T]:
        """The entry of ``name`` (or of what the alias ``name`` stands for)."""
        found = self._entries.get(self.canonical(name))
        if found is None:
            raise BadInputError(f"unknown {self.kind} {name!r}; known: {self.known()}")
        return found

    def get(self, name: str) -> T:
        """The value registered as ``name``; :class:`BadInputError` naming the known ones if there is none."""
        return self.entry(name).value

    def names(self) -> tuple[str, ...]:
        """Registered names (aliases not included), in registration order."""
        return tuple(self._entries)

    def entries(self) -> tuple[Entry[T], ...]:
        return tuple(self._entries.values())

    def aliases_of(self, name: str) -> list[str]:
        """The old names that resolve to ``name``, sorted."""
        return sorted(a for a, target in self.aliases.items() if target == name)

    def known(self) -> str:
        """Every accepted name for messages: ``a, b, c (alias x = b)``."""
        text = ", ".join(self._entries)
        if self.aliases:
            text += " (alias " + ", ".join(f"{a} = {t}" for a, t in sorted(self.aliases.items())) + ")"
        return text
