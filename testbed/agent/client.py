"""Clients for the device agent (httpx): :class:`AgentClient` (blocking) and :class:`AsyncAgentClient`.

Both send the bearer token on every call, use timeouts, retry connection failures (httpx transport
retries: only requests that never reached the agent are repeated), and turn error answers into the
project's exceptions: 4xx → :class:`AgentRequestError` (exit 2 from the CLI), unreachable or 5xx →
:class:`AgentUnavailable` (exit 1). :meth:`AgentClient.lease` is a context manager that takes the
lease, renews it in the background, and gives it back (restoring the board) at the end.

Both implement the typed protocols of :mod:`testbed.agent.api` (:class:`AgentAPI`,
:class:`AsyncAgentAPI`); type call sites with those. For several boards, see :mod:`testbed.agent.pool`.

Use the async client to drive many boards at once::

    async with AsyncAgentClient(url_a, token) as a, AsyncAgentClient(url_b, token) as b:
        infos = await asyncio.gather(a.info(), b.info())
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import httpx
from typing_extensions import Unpack

from devices.errors import BadInputError, HardwareError
from testbed.agent.api import (
    AgentAPI,
    AgentInfo,
    AsyncAgentAPI,
    FrequencyResults,
    LeaseInfo,
    Measurement,
    MeasureOptions,
    ModelInfo,
    PowerSamples,
    Released,
    Restored,
    SwitchResult,
    Unloaded,
)

LEASE_HEADER = "X-Testbed-Lease"
DEFAULT_TIMEOUT_S = 30.0
LONG_TIMEOUT_S = 3600.0  # loading and measuring may take long on a slow board


class AgentRequestError(BadInputError):
    """The agent refused the request (4xx); the message carries its explanation."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"agent answered {status}: {detail}")
        self.status = status
        self.detail = detail


class AgentUnavailable(HardwareError):
    """The agent could not be reached or failed (5xx)."""


#: A controller's lease TTL (s): renewed every third of it, so a killed controller's lease ends this soon.
CONTROLLER_LEASE_TTL_S = 10.0


def run_lease_key(token: str, run_dir: Path | None) -> str | None:
    """The resume key of the run in ``run_dir`` (the same for the run and its ``--resume``): an HMAC of the
    run directory's absolute path under the bearer token, so the key never travels or is stored in clear."""
    if run_dir is None:
        return None
    import hashlib
    import hmac

    return hmac.new(token.encode(), f"rt3-run-lease:{Path(run_dir).resolve()}".encode(), hashlib.sha256).hexdigest()


def read_token(token_file: Path | None) -> str:
    """The token from ``token_file`` or ``$TESTBED_AGENT_TOKEN``."""
    if token_file is not None:
        try:
            token = token_file.read_bytes().decode("ascii").strip()
        except FileNotFoundError:
            raise BadInputError(f"{token_file}: token file not found") from None
        except UnicodeDecodeError:
            raise BadInputError(f"{token_file}: not a token file (expected one line of ASCII text)") from None
        if not token or not token.isprintable() or "\n" in token:
            raise BadInputError(f"{token_file}: not a token file (expected one line of ASCII text)")
        return token
    token = os.environ.get("TESTBED_AGENT_TOKEN", "").strip()
    if not token:
        raise BadInputError("no agent token: pass --token-file FILE or set TESTBED_AGENT_TOKEN")
    return token


def _raise_for(resp: httpx.Response) -> dict[str, Any]:
    """The JSON object of a success answer; the project's exception for an error answer."""
    if resp.status_code < 400:
        try:
            body = resp.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise AgentUnavailable(f"agent answered {resp.status_code} without a JSON object: {resp.text[:200]}")
        return body
    try:
        body = resp.json()
        detail = body.get("detail", body) if isinstance(body, dict) else body
    except ValueError:
        detail = resp.text[:300]
    if isinstance(detail, list):  # pydantic validation errors
        detail = "; ".join(f"{'.'.join(str(x) for x in d.get('loc', []))}: {d.get('msg')}" for d in detail)
    if resp.status_code >= 500:
        raise AgentUnavailable(f"agent failed ({resp.status_code}): {detail}")
    raise AgentRequestError(resp.status_code, str(detail))


Request = tuple[str, str, dict[str, Any]]


class Requests:
    """Each API call as ``(method, path, httpx keyword arguments)``, shared by both clients."""

    @staticmethod
    def info() -> Request:
        return "GET", "/v1/info", {}

    @staticmethod
    def acquire(holder: str, ttl_s: float, resume_key: str | None = None) -> Request:
        body: dict[str, Any] = {"holder": holder, "ttl_s": ttl_s}
        if resume_key is not None:
            body["resume_key"] = resume_key
        return "POST", "/v1/lease", {"json": body}

    @staticmethod
    def renew(ttl_s: float | None) -> Request:
        return "POST", "/v1/lease/renew", {"json": {"ttl_s": ttl_s}}

    @staticmethod
    def release() -> Request:
        return "DELETE", "/v1/lease", {}

    @staticmethod
    def set_frequency(level: str | None, policy: str | None, freq_khz: int | None) -> Request:
        body = {"level": level} if level is not None else {"policy": policy, "freq_khz": freq_khz}
        return "POST", "/v1/frequency", {"json": body}

    @staticmethod
    def load_model(path: str, sha256: str | None) -> Request:
        return "POST", "/v1/models", {"json": {"path": path, "sha256": sha256}, "timeout": LONG_TIMEOUT_S}

    @staticmethod
    def upload_model(data: bytes) -> Request:
        params = {"sha256": hashlib.sha256(data).hexdigest()}
        return "PUT", "/v1/models/upload", {"params": params, "content": data, "timeout": LONG_TIMEOUT_S}

    @staticmethod
    def unload_model(model_id: str) -> Request:
        return "DELETE", f"/v1/models/{model_id}", {}

    @staticmethod
    def switch(model_id: str, pattern_set: str) -> Request:
        return "POST", f"/v1/models/{model_id}/switch", {"json": {"pattern_set": pattern_set}}

    @staticmethod
    def measure(model_id: str, options: MeasureOptions) -> Request:
        body = {"model_id": model_id, **{k: v for k, v in options.items() if v is not None}}
        return "POST", "/v1/measure", {"json": body, "timeout": LONG_TIMEOUT_S}

    @staticmethod
    def power_samples(since_ns: int | None, limit: int) -> Request:
        params: dict[str, int] = {"limit": limit}
        if since_ns is not None:
            params["since_ns"] = since_ns
        return "GET", "/v1/power/samples", {"params": params}

    @staticmethod
    def restore() -> Request:
        return "POST", "/v1/restore", {}


class AgentClient:
    """Blocking client for one agent; implements :class:`~testbed.agent.api.AgentAPI`."""

    def __init__(
        self,
        url: str,
        token: str,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        retries: int = 3,
        resume_key: str | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.lease_id: str | None = None
        #: Sent with every lease request: the same holder with the same key takes its own lease back.
        self.resume_key = resume_key
        self._http = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout_s,
            transport=httpx.HTTPTransport(retries=retries),
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AgentClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, request: Request) -> dict[str, Any]:
        method, path, kw = request
        headers = {LEASE_HEADER: self.lease_id} if self.lease_id else {}
        try:
            resp = self._http.request(method, path, headers=headers, **kw)
        except httpx.TransportError as exc:
            raise AgentUnavailable(f"cannot reach the agent at {self.url}: {exc}") from None
        return _raise_for(resp)

    def info(self) -> AgentInfo:
        return cast(AgentInfo, self._call(Requests.info()))

    def acquire(self, holder: str, ttl_s: float = 60.0, resume_key: str | None = None) -> LeaseInfo:
        """Take the lease; with ``resume_key`` the same holder may take its own lease back (a resumed run)."""
        data = cast(LeaseInfo, self._call(Requests.acquire(holder, ttl_s, resume_key or self.resume_key)))
        self.lease_id = str(data["lease_id"])
        return data

    def renew(self, ttl_s: float | None = None) -> LeaseInfo:
        return cast(LeaseInfo, self._call(Requests.renew(ttl_s)))

    def release(self) -> Released:
        data = cast(Released, self._call(Requests.release()))
        self.lease_id = None
        return data

    @contextlib.contextmanager
    def lease(self, holder: str, ttl_s: float = 30.0, resume_key: str | None = None) -> Iterator[AgentClient]:
        """Hold the lease for the block, renewing every ``ttl_s / 3`` s; released (board restored) after.

        ``resume_key``: a secret of the caller's run, so that a resumed run takes its own lease back."""
        self.acquire(holder, ttl_s, resume_key)
        stop = threading.Event()

        def keep_alive() -> None:
            while not stop.wait(ttl_s / 3):
                with contextlib.suppress(AgentUnavailable, AgentRequestError):
                    self.renew()

        t = threading.Thread(target=keep_alive, name="lease-renew", daemon=True)
        t.start()
        try:
            yield self
        finally:
            stop.set()
            t.join(timeout=5)
            with contextlib.suppress(AgentUnavailable, AgentRequestError):
                try:
                    self.release()
                except AgentUnavailable:  # a 5xx answer may have reset the pooled connection: once more, anew
                    self.release()

    def set_frequency(
        self, level: str | None = None, policy: str | None = None, freq_khz: int | None = None
    ) -> FrequencyResults:
        return cast(FrequencyResults, self._call(Requests.set_frequency(level, policy, freq_khz)))

    def load_model(self, path: str, sha256: str | None = None) -> ModelInfo:
        return cast(ModelInfo, self._call(Requests.load_model(path, sha256)))

    def upload_model(self, path: Path) -> ModelInfo:
        return cast(ModelInfo, self._call(Requests.upload_model(path.read_bytes())))

    def unload_model(self, model_id: str) -> Unloaded:
        return cast(Unloaded, self._call(Requests.unload_model(model_id)))

    def switch(self, model_id: str, pattern_set: str) -> SwitchResult:
        return cast(SwitchResult, self._call(Requests.switch(model_id, pattern_set)))

    def measure(self, model_id: str, **options: Unpack[MeasureOptions]) -> Measurement:
        return cast(Measurement, self._call(Requests.measure(model_id, options)))

    def power_samples(self, since_ns: int | None = None, limit: int = 10_000) -> PowerSamples:
        return cast(PowerSamples, self._call(Requests.power_samples(since_ns, limit)))

    def restore(self) -> Restored:
        return cast(Restored, self._call(Requests.restore()))


class AsyncAgentClient:
    """The same API for asyncio code driving many agents concurrently (:class:`~testbed.agent.api.AsyncAgentAPI`)."""

    def __init__(self, url: str, token: str, timeout_s: float = DEFAULT_TIMEOUT_S, retries: int = 3) -> None:
        self.url = url.rstrip("/")
        self.lease_id: str | None = None
        self._http = httpx.AsyncClient(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout_s,
            transport=httpx.AsyncHTTPTransport(retries=retries),
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncAgentClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _call(self, request: Request) -> dict[str, Any]:
        method, path, kw = request
        headers = {LEASE_HEADER: self.lease_id} if self.lease_id else {}
        try:
            resp = await self._http.request(method, path, headers=headers, **kw)
        except httpx.TransportError as exc:
            raise AgentUnavailable(f"cannot reach the agent at {self.url}: {exc}") from None
        return _raise_for(resp)

    async def info(self) -> AgentInfo:
        return cast(AgentInfo, await self._call(Requests.info()))

    async def acquire(self, holder: str, ttl_s: float = 60.0, resume_key: str | None = None) -> LeaseInfo:
        data = cast(LeaseInfo, await self._call(Requests.acquire(holder, ttl_s, resume_key)))
        self.lease_id = str(data["lease_id"])
        return data

    async def renew(self, ttl_s: float | None = None) -> LeaseInfo:
        return cast(LeaseInfo, await self._call(Requests.renew(ttl_s)))

    async def release(self) -> Released:
        data = cast(Released, await self._call(Requests.release()))
        self.lease_id = None
        return data

    async def set_frequency(
        self, level: str | None = None, policy: str | None = None, freq_khz: int | None = None
    ) -> FrequencyResults:
        return cast(FrequencyResults, await self._call(Requests.set_frequency(level, policy, freq_khz)))

    async def load_model(self, path: str, sha256: str | None = None) -> ModelInfo:
        return cast(ModelInfo, await self._call(Requests.load_model(path, sha256)))

    async def upload_model(self, path: Path) -> ModelInfo:
        return cast(ModelInfo, await self._call(Requests.upload_model(path.read_bytes())))

    async def unload_model(self, model_id: str) -> Unloaded:
        return cast(Unloaded, await self._call(Requests.unload_model(model_id)))

    async def switch(self, model_id: str, pattern_set: str) -> SwitchResult:
        return cast(SwitchResult, await self._call(Requests.switch(model_id, pattern_set)))

    async def measure(self, model_id: str, **options: Unpack[MeasureOptions]) -> Measurement:
        return cast(Measurement, await self._call(Requests.measure(model_id, options)))

    async def power_samples(self, since_ns: int | None = None, limit: int = 10_000) -> PowerSamples:
        return cast(PowerSamples, await self._call(Requests.power_samples(since_ns, limit)))

    async def restore(self) -> Restored:
        return cast(Restored, await self._call(Requests.restore()))


if TYPE_CHECKING:  # mypy proves both clients implement their protocol (signatures included)

    def _implements(sync: AgentClient, asynchronous: AsyncAgentClient) -> tuple[AgentAPI, AsyncAgentAPI]:
        return sync, asynchronous
