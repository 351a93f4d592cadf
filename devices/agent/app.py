"""The agent's HTTP API (FastAPI). Every route but ``/openapi.json`` needs ``Authorization: Bearer TOKEN``.

Routes (all JSON; the lease id travels in the ``X-Testbed-Lease`` header):

=======  ===============================  =====================================================
GET      /v1/info                          board, profile, levels, meter, lease, models
POST     /v1/lease                         take the lease ``{holder, ttl_s}`` → ``{lease_id, …}``
POST     /v1/lease/renew                   extend it
DELETE   /v1/lease                         give it back (the board is restored)
POST     /v1/frequency        (lease)      ``{level}`` or ``{policy, freq_khz}`` → read-back
POST     /v1/models           (lease)      load an artifact from the agent's models directory (+ sha256)
PUT      /v1/models/upload    (lease)      upload an ``.onnx``/``.rt3`` body (streamed, checked against ``?sha256=``)
DELETE   /v1/models/{id}      (lease)      unload
POST     /v1/models/{id}/switch (lease)    ``{pattern_set}`` → measured switch time (ms)
POST     /v1/measure          (lease)      a measurement window → latency stats, energy, state
GET      /v1/power/samples                 power samples after ``since_ns`` (agent monotonic ns)
POST     /v1/restore          (lease)      restore the saved board state
=======  ===============================  =====================================================

Status codes: 400 bad input, 401 no/bad token, 403 a model path outside the models directory, 404 unknown
model, 409 lease held by someone else, 413 body too large, 422 malformed body, 423 lease required, 429
readers throttled while a measurement window runs (``Retry-After``), 503 hardware failure. Handlers never
answer 5xx for bad input. Models belong to the lease that loaded them and are unloaded when it ends.
"""

import hashlib
import hmac
import os
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from devices import __version__
from devices.agent.leases import LeaseConflict, LeaseRequired
from devices.agent.models_dir import ModelPathRefused
from devices.agent.schemas import (
    ErrorBody,
    FrequencyRequest,
    LeaseInfo,
    LeaseRenew,
    LeaseRequest,
    MeasureRequest,
    MeasureResult,
    ModelLoadRequest,
    SwitchRequest,
)
from devices.agent.service import AgentService, UnknownModel
from devices.agent.window import ReadersThrottled
from devices.errors import BadInputError, HardwareError, TestbedError

MAX_JSON_BYTES = 64 * 1024
LEASE_HEADER = "X-Testbed-Lease"
#: Routes that only read; rate-limited while a measurement window runs.
READER_PATHS = frozenset({"/v1/info", "/v1/power/samples"})


class BodyLimit:
    """ASGI middleware: refuse bodies over a limit (413), by header and while streaming."""

    def __init__(self, app: ASGIApp, max_json_bytes: int, max_upload_bytes: int) -> None:
        self.app = app
        self.max_json = max_json_bytes
        self.max_upload = max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_upload if scope["path"].endswith("/upload") else self.max_json
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > limit
                except ValueError:
                    too_big = True
                if too_big:
                    await _send_413(send, limit)
                    return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _BodyTooLarge()
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await _send_413(send, limit)


class _BodyTooLarge(Exception):
    pass


async def _send_413(send: Send, limit: int) -> None:
    body = f'{{"error":"payload_too_large","detail":"request body over {limit} bytes"}}'.encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def create_app(
    service: AgentService,
    token: str,
    manage_lifecycle: bool = True,
    max_upload_bytes: int = 256 * 1024 * 1024,
) -> FastAPI:
    """The FastAPI application around ``service``; ``token`` is the bearer token every call needs."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        if manage_lifecycle and not service.started:
            service.start()
        try:
            yield
        finally:
            if manage_lifecycle:
                service.stop()

    app = FastAPI(
        title="RT3 testbed device agent",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
        responses={
            401: {"model": ErrorBody},
            400: {"model": ErrorBody},
            413: {"model": ErrorBody},
        },
    )
    bearer = HTTPBearer(auto_error=False)
    expected = token.encode()

    def require_token(
        request: Request,
        creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> None:
        given = creds.credentials.encode() if creds is not None else b""
        if creds is None or creds.scheme.lower() != "bearer" or not hmac.compare_digest(given, expected):
            raise HTTPException(status_code=401, detail="missing or wrong bearer token")
        path = request.url.path
        if path in READER_PATHS:
            service.window.admit_reader()  # rate-limited (429) while a window runs, and counted against it
        elif path != "/v1/lease/renew":  # renewing is the window holder's own bookkeeping
            service.window.note_request()

    def lease_id_of(request: Request) -> str | None:
        # read directly (not declared as a parameter): the id is a credential, like the bearer token
        return request.headers.get(LEASE_HEADER)

    def require_lease(request: Request) -> None:
        service.leases.check(lease_id_of(request))

    auth = [Depends(require_token)]
    leased = [Depends(require_token), Depends(require_lease)]

    @app.exception_handler(TestbedError)
    async def _testbed_error(request: Request, exc: TestbedError) -> JSONResponse:
        status = 400
        headers = None
        if isinstance(exc, UnknownModel):
            status = 404
        elif isinstance(exc, ModelPathRefused):
            status = 403
        elif isinstance(exc, ReadersThrottled):
            status = 429
            headers = {"Retry-After": str(max(1, round(exc.retry_after_s + 0.5)))}
        elif isinstance(exc, LeaseConflict):
            status = 409
        elif isinstance(exc, LeaseRequired):
            status = 423
        elif isinstance(exc, HardwareError) or not isinstance(exc, BadInputError):
            status = 503
        return JSONResponse(
            status_code=status, content={"error": type(exc).__name__, "detail": str(exc)}, headers=headers
        )

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        return JSONResponse(
            status_code=exc.status_code, content={"error": "http_error", "detail": str(exc.detail)}, headers=headers
        )

    @app.get("/v1/info", dependencies=auth)
    def info() -> dict[str, Any]:
        """Board, profile, policies and levels, meter, thermal state, lease, loaded models, versions."""
        return service.info()

    @app.post("/v1/lease", dependencies=auth, status_code=201, responses={409: {"model": ErrorBody}})
    def take_lease(body: LeaseRequest) -> LeaseInfo:
        lease = service.leases.acquire(body.holder, body.ttl_s, body.resume_key)
        if lease.resumed_from is not None:
            service.lease_taken_over(lease.resumed_from, lease.lease_id)
        return LeaseInfo(
            lease_id=lease.lease_id, holder=lease.holder, ttl_s=lease.ttl_s, expires_in_s=lease.ttl_s,
            resumed=lease.resumed_from is not None,
        )  # fmt: skip

    @app.post("/v1/lease/renew", dependencies=auth, responses={423: {"model": ErrorBody}})
    def renew_lease(body: LeaseRenew, request: Request) -> LeaseInfo:
        lease = service.leases.renew(lease_id_of(request), body.ttl_s)
        return LeaseInfo(lease_id=lease.lease_id, holder=lease.holder, ttl_s=lease.ttl_s, expires_in_s=lease.ttl_s)

    @app.delete("/v1/lease", dependencies=auth, responses={423: {"model": ErrorBody}})
    def release_lease(request: Request) -> dict[str, Any]:
        lease, restored = service.release_lease(lease_id_of(request))
        return {"released": lease.holder, "restored": restored}

    @app.post("/v1/frequency", dependencies=leased, responses={423: {"model": ErrorBody}})
    def set_frequency(body: FrequencyRequest) -> dict[str, Any]:
        return {"results": service.set_frequency(body.level, body.policy, body.freq_khz)}

    @app.post("/v1/models", dependencies=leased, status_code=201)
    def load_model(body: ModelLoadRequest, request: Request) -> dict[str, Any]:
        return service.load_model(body.path, body.sha256, lease_id_of(request)).describe()

    @app.put("/v1/models/upload", dependencies=leased, status_code=201)
    async def upload_model(
        request: Request, sha256: Annotated[str, Query(pattern=r"^[0-9a-fA-F]{64}$")]
    ) -> dict[str, Any]:
        # streamed to the models directory's upload area and hashed on the way: never held whole in memory
        path, fd = service.models_dir.new_upload()
        h = hashlib.sha256()
        try:
            with os.fdopen(fd, "wb") as fh:
                async for chunk in request.stream():
                    h.update(chunk)
                    fh.write(chunk)
            if h.hexdigest() != sha256.lower():
                raise BadInputError(f"uploaded body does not match the declared sha256 {sha256}")
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        model = await run_in_threadpool(service.load_upload, path, lease_id_of(request))  # deletes the upload
        return model.describe()

    @app.delete("/v1/models/{model_id}", dependencies=leased, responses={404: {"model": ErrorBody}})
    def unload_model(model_id: str) -> dict[str, str]:
        service.unload_model(model_id)
        return {"unloaded": model_id}

    @app.post("/v1/models/{model_id}/switch", dependencies=leased, responses={404: {"model": ErrorBody}})
    def switch(model_id: str, body: SwitchRequest) -> dict[str, Any]:
        switch_ms = service.switch(model_id, body.pattern_set)
        return {"model_id": model_id, "pattern_set": body.pattern_set, "switch_ms": switch_ms}

    @app.post("/v1/measure", dependencies=leased, responses={404: {"model": ErrorBody}})
    def measure(body: MeasureRequest, request: Request) -> MeasureResult:
        return MeasureResult.model_validate(service.measure(**body.model_dump(), lease_id=lease_id_of(request)))

    @app.get("/v1/power/samples", dependencies=auth)
    def power_samples(
        since_ns: Annotated[int | None, Query(ge=0)] = None,
        limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
    ) -> dict[str, Any]:
        return service.power_samples(since_ns, limit)

    @app.post("/v1/restore", dependencies=leased)
    def restore() -> dict[str, Any]:
        return {"restored": service.restore()}

    app.add_middleware(BodyLimit, max_json_bytes=MAX_JSON_BYTES, max_upload_bytes=max_upload_bytes)
    return app
