"""The one place that starts or joins Ray: :func:`ray_session`.

Without an address Ray starts embedded in this process, sized for a small controller (``num_cpus`` = the
machine's cores unless given, no dashboard, a 100 MB object store, worker output not echoed to the driver).
``address="auto"`` joins the cluster this machine is part of (``ray start`` ran here), ``ray://host:port`` a
remote cluster through Ray Client, ``host:port`` the head node's GCS. A session that finds Ray already
initialised in this process (a test fixture, a notebook) reuses it and leaves it running.

Ray is imported inside the functions: importing :mod:`testbed.distributed` costs nothing until a sweep starts.

Failure modes: :class:`~devices.errors.BadInputError` when Ray is not installed (the controller extra) or an
address is malformed; :class:`~devices.errors.TestbedError` when a cluster cannot be reached.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from devices.errors import BadInputError, TestbedError

#: Object store of an embedded instance (bytes): run results are small; cells write their rows to disk.
LOCAL_OBJECT_STORE_BYTES = 100 * 1024 * 1024
_ADDRESS = re.compile(r"^(auto|ray://[^\s/:]+:\d+|[^\s/:]+:\d+)$")


@dataclass(frozen=True)
class ClusterInfo:
    """Where the work runs: ``address`` as given (None: embedded), the nodes alive and their CPUs."""

    address: str | None
    nodes: int
    cpus: float

    def describe(self) -> str:
        where = "embedded local Ray" if self.address is None else f"Ray cluster at {self.address}"
        return f"{where}: {self.nodes} node(s), {self.cpus:g} CPU(s)"


def import_ray() -> Any:
    """The ``ray`` module, or :class:`BadInputError` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise BadInputError("Ray is not installed: pip install 'rt3-testbed[controller]' (or ray[tune])") from None
    return ray


def check_address(address: str | None) -> None:
    """:class:`BadInputError` unless ``address`` is None, ``auto``, ``ray://host:port`` or ``host:port``."""
    if address is not None and not _ADDRESS.match(address):
        raise BadInputError(f"--address {address!r}: give auto, ray://HOST:PORT or HOST:PORT")


def cluster_info(address: str | None) -> ClusterInfo:
    """The running session's nodes and CPUs."""
    ray = import_ray()
    alive = [n for n in ray.nodes() if n.get("Alive")]
    return ClusterInfo(address, len(alive), float(ray.cluster_resources().get("CPU", 0.0)))


def _use_local_token() -> None:
    """Join with this machine's Ray token (``~/.ray/auth_token``, what ``ray start`` uses) when ``RAY_AUTH_MODE`` is
    unset: a fresh ``ray start`` cluster requires it, and a driver that imported Ray earlier would not send it."""
    if "RAY_AUTH_MODE" in os.environ:
        return
    try:
        from ray._private.authentication.authentication_token_setup import (
            maybe_enable_token_auth_if_token_available,
        )
    except ImportError:  # another Ray version: its own defaults apply
        return
    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


@contextmanager
def loopback_only(enabled: bool = True) -> Iterator[None]:
    """While Ray starts a local node in this block, give it 127.0.0.1 (Ray's default is the host's address, so
    an embedded node would listen on the network); Ray reads the switch when it picks the node's address."""
    if not enabled:
        yield
        return
    try:
        from ray._private import ray_constants
    except ImportError:  # another Ray version: its own defaults apply
        yield
        return
    before = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = before


@contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None) -> Iterator[ClusterInfo]:
    """Ray for a block (see the module text): embedded when ``address`` is None, else joined; shut down after
    unless it was already running."""
    check_address(address)
    ray = import_ray()
    if ray.is_initialized():
        yield cluster_info(address)
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    kwargs: dict[str, Any] = {"log_to_driver": False, "configure_logging": False}
    if address is None:
        kwargs.update(
            address="local",  # a new instance, even where `ray start` left a cluster behind
            num_cpus=num_cpus or os.cpu_count() or 1,
            include_dashboard=False,
            object_store_memory=LOCAL_OBJECT_STORE_BYTES,
        )
    else:
        kwargs["address"] = address
        _use_local_token()
        host = address.rpartition(":")[0]
        if host.startswith("127."):  # a cluster on this machine's loopback: this driver sits on the head's node
            kwargs["_node_ip_address"] = host
    try:
        with loopback_only(address is None):
            ray.init(**kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TestbedError(f"cannot start or reach Ray ({address or 'embedded'}): {first}") from None
    try:
        yield cluster_info(address)
    finally:
        ray.shutdown()
