"""Starting the agent: token handling, binding rules, emulation, uvicorn.

* The bearer token comes from ``--token-file``; a missing file is created with a fresh random token
  (mode 0600). Without ``--token-file`` a loopback agent keeps its token in the state directory.
  Binding anything but loopback requires an explicit token file. A token file that its group or others
  may read is refused (``chmod 600`` is named); a token with little entropy starts the agent with a
  warning naming how to make a strong one.
* Models load only from ``--models-dir`` (default ``STATE_DIR/models``); uploads land there too.
* SIGTERM/SIGINT abort a running measurement window at once (the board is restored on the way out).
* ``--emulate PROFILE`` lays out a fake kernel tree (in ``--sysfs-root`` or the state directory) and
  uses the modelled meter ``model://PROFILE`` unless ``--meter`` says otherwise.
* ``--port 0`` picks a free port; the agent prints ``listening on http://HOST:PORT`` either way.
"""

from __future__ import annotations

import ipaddress
import math
import os
import secrets
import socket
import stat
import sys
from pathlib import Path
from typing import Any, TextIO

from devices.errors import BadInputError
from devices.guard import default_state_dir

MIN_TOKEN_CHARS = 16
#: Estimated entropy (bits) under which a token draws a warning.
WEAK_TOKEN_BITS = 96
STRONG_TOKEN_HINT = "python -c 'import secrets; print(secrets.token_urlsafe(32))' > FILE; chmod 600 FILE"


def token_bits(token: str) -> float:
    """A rough entropy estimate (bits): the character classes used and how many distinct characters appear."""
    classes = 0
    classes += 26 if any(c.islower() for c in token) else 0
    classes += 26 if any(c.isupper() for c in token) else 0
    classes += 10 if any(c.isdigit() for c in token) else 0
    classes += 32 if any(not c.isalnum() for c in token) else 0
    alphabet = min(max(classes, 2), max(2, len(set(token)) * 2))
    return len(token) * math.log2(alphabet)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_or_create_token(path: Path, out: TextIO) -> str:
    """The token in ``path``; a new random one (written 0600) when the file does not exist."""
    if path.exists():
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise BadInputError(
                f"{path}: the token file may be read by its group or others (mode {mode:04o}); "
                f"run `chmod 600 {path}` and start again"
            )
        try:
            token = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise BadInputError(f"{path}: cannot read the token file: {exc.strerror}") from None
        if len(token) < MIN_TOKEN_CHARS:
            raise BadInputError(f"{path}: token too short ({len(token)} chars); use at least {MIN_TOKEN_CHARS}")
        if token_bits(token) < WEAK_TOKEN_BITS:
            out.write(
                f"warning: {path}: the token looks weak (about {token_bits(token):.0f} bits); make a strong one "
                f"with {STRONG_TOKEN_HINT.replace('FILE', str(path))}\n"
            )
        return token
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(token + "\n")
    out.write(f"wrote a new agent token to {path}\n")
    return token


def serve(
    host: str = "127.0.0.1",
    port: int = 8765,
    token_file: Path | None = None,
    board: str | None = None,
    meter: str | None = None,
    sysfs_root: Path = Path("/"),
    emulate: str | None = None,
    state_dir: Path | None = None,
    threads: int | None = None,
    out: TextIO = sys.stdout,
    models_dir: Path | None = None,
    max_window_s: float = 600.0,
) -> None:
    """Run the agent until SIGINT/SIGTERM; the board is restored on the way out."""
    import uvicorn

    from devices.agent.app import create_app
    from devices.agent.service import AgentService
    from devices.board import Board
    from devices.fake.kernel import FakeKernel
    from devices.fake.marker import is_fake_tree
    from devices.sysroot import open_sysfs

    if not is_loopback(host) and token_file is None:
        raise BadInputError(f"binding {host} exposes the board to the network: --token-file FILE is required")
    sdir = state_dir or default_state_dir()
    token = load_or_create_token(token_file or sdir / "agent-token", out)
    if emulate:
        root = sysfs_root if str(sysfs_root) != "/" else sdir / "emulated" / Path(emulate).stem
        if not is_fake_tree(root):
            FakeKernel.create(root, emulate)
        sysfs_root = root
        board = board or emulate
        meter = meter or f"model://{emulate}"
    b = Board(open_sysfs(sysfs_root), board=board)
    b.profile  # noqa: B018 - resolve (and validate) the profile before binding the port
    service = AgentService(
        b, meter_uri=meter, state_dir=state_dir, emulated=bool(emulate), threads=threads,
        models_dir=models_dir if models_dir is not None else sdir / "models", max_window_s=max_window_s,
    )  # fmt: skip
    app = create_app(service, token)  # its lifespan stops the service (restoring the board) on shutdown

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # accepted sockets inherit it
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise BadInputError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(128)
    try:
        service.start()  # recover a crashed run's board state before anyone can connect
    except BaseException:
        sock.close()
        raise
    real_port = sock.getsockname()[1]
    where = f"[{host}]" if family == socket.AF_INET6 else host
    out.write(
        f"testbed agent {b.profile.name} ({'emulated at ' + str(sysfs_root) if emulate else sysfs_root}) "
        f"meter {meter or 'none'}\nlistening on http://{where}:{real_port}\n"
    )
    out.flush()
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=5)
    server = _aborting_server_class()(config, service)
    server.run(sockets=[sock])


def _aborting_server_class() -> Any:
    import uvicorn

    class AbortingServer(uvicorn.Server):
        """uvicorn's server, but a shutdown signal first aborts the running measurement window, so the graceful
        shutdown does not wait for it (the board is restored when the service stops)."""

        def __init__(self, config: uvicorn.Config, service: Any) -> None:
            super().__init__(config)
            self.service = service

        def handle_exit(self, sig: int, frame: Any) -> None:
            self.service.window.abort("the agent is shutting down")
            super().handle_exit(sig, frame)

    return AbortingServer
