"""Frequency domains: which CPUs share a clock (a cpufreq policy), parsed from ``policy0=0-3,policy4=4-7``.

The same text appears on the command line (``--domains``) and in a DVFS trace header
(``domains: policy0=cpu0-3, policy4=cpu4-7``). A CPU list may itself contain commas
(``little=0-1,4-5,big=2-3``): a comma-separated piece without ``=`` continues the previous domain.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from devices.errors import BadInputError

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")


def _cpus(text: str) -> list[int]:
    """``"cpu0-3"``, ``"0-3"``, ``"4"`` → CPU numbers; raises :class:`ValueError` otherwise."""
    t = text.strip().lower().replace("cpu", "")
    if "-" in t:
        lo_s, hi_s = t.split("-", 1)
        lo, hi = int(lo_s), int(hi_s)
        if lo < 0 or hi < lo:
            raise ValueError(f"bad CPU range {text!r}")
        return list(range(lo, hi + 1))
    n = int(t)
    if n < 0:
        raise ValueError(f"negative CPU number {text!r}")
    return [n]


@dataclass(frozen=True)
class DomainMap:
    """Domain name → CPUs, with the reverse lookup. Built by :func:`parse_domains`."""

    domains: dict[str, tuple[int, ...]]

    def domain_of(self, cpu: int) -> str | None:
        """The domain that holds ``cpu``, or ``None``."""
        for name, cpus in self.domains.items():
            if cpu in cpus:
                return name
        return None

    def names(self) -> list[str]:
        return list(self.domains)

    def to_text(self) -> str:
        """The header form: ``policy0=cpu0-3, policy4=cpu4-7`` (contiguous runs compressed)."""
        return ", ".join(f"{name}={_compress(cpus)}" for name, cpus in self.domains.items())


def _compress(cpus: tuple[int, ...]) -> str:
    if not cpus:
        return ""
    runs: list[str] = []
    start = prev = cpus[0]
    for c in [*cpus[1:], None]:
        if c is not None and c == prev + 1:
            prev = c
            continue
        runs.append(f"cpu{start}" if start == prev else f"cpu{start}-{prev}")
        if c is not None:
            start = prev = c
    return ",".join(runs)


def parse_domains(text: str) -> DomainMap:
    """Parse ``policy0=0-3,policy4=4-7`` (or the ``cpu``-prefixed header form).

    Raises :class:`BadInputError` for an empty spec, a bad name or CPU list, a repeated domain, or a
    CPU in two domains. Callers reading a file wrap it into a :class:`~devices.errors.ParseError`.
    """
    domains: dict[str, list[int]] = {}
    current: str | None = None
    for piece in text.split(","):
        piece = piece.strip()
        if not piece:
            continue
        if "=" in piece:
            name, _, cpu_text = piece.partition("=")
            name = name.strip()
            if not _NAME.fullmatch(name):
                raise BadInputError(f"bad domain name {name!r} in {text!r}")
            if name in domains:
                raise BadInputError(f"domain {name!r} given twice in {text!r}")
            domains[name] = []
            current = name
            piece = cpu_text.strip()
            if not piece:  # a domain without CPUs (a GPU, a memory bus)
                continue
        if current is None:
            raise BadInputError(f"CPU list {piece!r} before any 'name=' in {text!r}")
        try:
            domains[current].extend(_cpus(piece))
        except ValueError:
            raise BadInputError(
                f"bad CPU list {piece!r} for domain {current!r}; write e.g. policy0=0-3,policy4=4-7"
            ) from None
    if not domains:
        raise BadInputError(f"no domains in {text!r}; write e.g. policy0=0-3,policy4=4-7")
    seen: dict[int, str] = {}
    for name, cpus in domains.items():
        for c in cpus:
            if c in seen and seen[c] != name:
                raise BadInputError(f"CPU {c} is in both {seen[c]!r} and {name!r}")
            seen[c] = name
    return DomainMap({n: tuple(sorted(set(c))) for n, c in domains.items()})
