"""Leases: who may change the board, until when.

One lease at a time per agent. A lease has a holder name, an id (a random token the holder sends back in
the ``X-Testbed-Lease`` header) and a TTL in seconds; the holder renews it before it expires. An expired
lease is freed by :meth:`LeaseManager.expire` (called periodically by the agent), which then runs the
``on_expire`` callback — the agent restores the board there.

A holder that gave a ``resume_key`` with its lease may take that lease back under a new id — after its
controller was killed and is resumed — by asking again with the same holder name and key (only the key's
SHA-256 is kept); anyone else still gets :class:`LeaseConflict`. A controller keeps its TTL short and renews,
so a lease nobody renews ends soon.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from devices.errors import BadInputError, TestbedError

MIN_TTL_S = 1.0
MAX_TTL_S = 24 * 3600.0


class LeaseConflict(TestbedError):
    """The board is leased to someone else (HTTP 409)."""

    exit_code = 1


class LeaseRequired(TestbedError):
    """A call that changes the board came without the current lease (HTTP 423)."""

    exit_code = 1


@dataclass
class Lease:
    lease_id: str
    holder: str
    ttl_s: float
    acquired_mono_s: float
    expires_mono_s: float
    resume_sha256: str | None = None
    #: The id this lease replaced when its holder took it back (None for a fresh lease).
    resumed_from: str | None = None

    def public(self, now_s: float) -> dict[str, object]:
        """What anyone may see: the holder and the time left, never the id."""
        return {"holder": self.holder, "ttl_s": self.ttl_s, "expires_in_s": round(self.expires_mono_s - now_s, 3)}


class LeaseManager:
    """Thread-safe single-holder lease with expiry on the monotonic clock."""

    def __init__(
        self,
        on_expire: Callable[[Lease], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lock = threading.RLock()
        self._lease: Lease | None = None
        self._on_expire = on_expire
        self._clock = clock

    def current(self) -> Lease | None:
        self.expire()
        with self._lock:
            return self._lease

    def acquire(self, holder: str, ttl_s: float, resume_key: str | None = None) -> Lease:
        """A new lease, the holder's own lease back under a new id (same holder and ``resume_key``), or
        :class:`LeaseConflict` naming the current holder."""
        if not MIN_TTL_S <= ttl_s <= MAX_TTL_S:
            raise BadInputError(f"ttl_s must be between {MIN_TTL_S:g} and {MAX_TTL_S:g} s, got {ttl_s:g}")
        key_sha = hashlib.sha256(resume_key.encode()).hexdigest() if resume_key else None
        self.expire()
        with self._lock:
            now = self._clock()
            resumed_from: str | None = None
            if self._lease is not None:
                cur = self._lease
                same = key_sha is not None and cur.resume_sha256 is not None and cur.holder == holder
                if not (same and secrets.compare_digest(key_sha or "", cur.resume_sha256 or "")):
                    left = cur.expires_mono_s - now
                    raise LeaseConflict(f"board is leased to {cur.holder!r} for another {left:.1f} s")
                resumed_from = cur.lease_id
            self._lease = Lease(
                lease_id=secrets.token_urlsafe(24),
                holder=holder,
                ttl_s=ttl_s,
                acquired_mono_s=now,
                expires_mono_s=now + ttl_s,
                resume_sha256=key_sha,
                resumed_from=resumed_from,
            )
            return self._lease

    def check(self, lease_id: str | None) -> Lease:
        """The current lease if ``lease_id`` is it; :class:`LeaseRequired` otherwise."""
        self.expire()
        with self._lock:
            if self._lease is None:
                raise LeaseRequired("this call changes the board: take a lease first (POST /v1/lease)")
            if lease_id is None or not secrets.compare_digest(lease_id, self._lease.lease_id):
                raise LeaseRequired(f"board is leased to {self._lease.holder!r}; send its id in X-Testbed-Lease")
            return self._lease

    def renew(self, lease_id: str | None, ttl_s: float | None = None) -> Lease:
        lease = self.check(lease_id)
        with self._lock:
            if ttl_s is not None:
                if not MIN_TTL_S <= ttl_s <= MAX_TTL_S:
                    raise BadInputError(f"ttl_s must be between {MIN_TTL_S:g} and {MAX_TTL_S:g} s, got {ttl_s:g}")
                lease.ttl_s = ttl_s
            lease.expires_mono_s = self._clock() + lease.ttl_s
            return lease

    def release(self, lease_id: str | None) -> Lease:
        """Give the lease back (the caller restores the board)."""
        lease = self.check(lease_id)
        with self._lock:
            self._lease = None
        return lease

    def expire(self) -> Lease | None:
        """Free an expired lease and run ``on_expire``; returns the expired lease, if any."""
        with self._lock:
            lease = self._lease
            if lease is None or self._clock() < lease.expires_mono_s:
                return None
            self._lease = None
        if self._on_expire is not None:
            self._on_expire(lease)
        return lease
