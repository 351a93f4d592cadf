"""Meter URIs: the parsed form every backend receives, and the parser.

A meter URI is ``SCHEME://TARGET?key=value&…``. ``TARGET`` is everything between ``://`` and the
last ``?`` — a serial port (``/dev/rfcomm0`` or any pyserial URL such as ``socket://host:port`` or
``loop://``), a profile name, a file, or nothing. Parameters that the scheme does not accept are kept
with a pyserial URL target (``socket://h:p?logging=debug``) and rejected otherwise.

This module knows no backend: which schemes exist and what each accepts is handed in by the registry
(:mod:`devices.meters.registry`), the one place that maps a scheme to its class.

Failure modes: :class:`~devices.errors.BadInputError` for a malformed URI, an unknown scheme or a
parameter the scheme does not accept.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from devices.errors import BadInputError


@dataclass(frozen=True)
class MeterURI:
    """A parsed meter URI: the text as given, its scheme, its target and the accepted parameters."""

    raw: str
    scheme: str
    target: str
    params: dict[str, str] = field(default_factory=dict)


def parse_meter_uri(uri: str, accepted: Mapping[str, Sequence[str]]) -> MeterURI:
    """Split ``uri``; ``accepted`` maps each known scheme to the parameters it takes."""
    m = re.fullmatch(r"([a-z0-9][a-z0-9+.-]*)://(.*)", uri.strip(), flags=re.S)
    if m is None:
        raise BadInputError(
            f"meter URI {uri!r}: expected SCHEME://TARGET, e.g. um25c:///dev/rfcomm0 "
            f"(schemes: {', '.join(sorted(accepted))})"
        )
    scheme, rest = m.group(1), m.group(2)
    params_of = accepted.get(scheme)
    if params_of is None:
        raise BadInputError(f"meter URI {uri!r}: unknown scheme {scheme!r}; known: {', '.join(sorted(accepted))}")
    target, params = rest, {}
    if "?" in rest:
        target, query = rest.rsplit("?", 1)
        foreign: list[str] = []
        for part in query.split("&"):
            if not part:
                continue
            if "=" not in part:
                key, value = part, "1"
            else:
                key, value = part.split("=", 1)
            if key in params_of:
                params[key] = value
            else:
                foreign.append(part)
        if foreign:
            if "://" in target:  # a pyserial URL keeps its own options
                target = target + "?" + "&".join(foreign)
            else:
                known = ", ".join(params_of) or "none"
                raise BadInputError(
                    f"meter URI {uri!r}: unknown parameter(s) {', '.join(foreign)}; {scheme} accepts: {known}"
                )
    return MeterURI(raw=uri, scheme=scheme, target=target, params=params)
