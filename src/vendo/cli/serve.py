"""``vendo serve``: the platform (Replicate's API) on the embedded default."""

from __future__ import annotations

import errno
import functools
import importlib.util
import logging
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import uvicorn

from vendo.cli.options import data_dir_option, host_option, port_option

if TYPE_CHECKING:
    from vendo.config import Settings

__all__ = ["serve"]


@click.command("serve")
@host_option
@port_option
@data_dir_option
@click.option("--examples", is_flag=True, help="Push the models in examples/ at start-up.")
@click.option(
    "--no-runners",
    is_flag=True,
    help="Run no models here: an API-only node of a scaled deployment, which accepts and "
    "queues predictions for the servers and agents sharing its PostgreSQL database "
    "(VENDO_DATABASE_URL) and bucket (VENDO_STORAGE_URL).",
)
@click.option(
    "--ssl-certfile",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Serve HTTPS with this certificate (PEM); clients turn https: output URLs into files.",
)
@click.option(
    "--ssl-keyfile",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="The private key (PEM) of --ssl-certfile.",
)
def serve(
    host: str | None,
    port: int | None,
    data_dir: Path | None,
    examples: bool,
    no_runners: bool,
    ssl_certfile: str | None,
    ssl_keyfile: str | None,
) -> None:
    """Run the platform: Replicate's HTTP API over an embedded store."""
    from vendo.app import create_app
    from vendo.cli.remote import forget_server, record_server

    settings = _settings(data_dir, host, port)
    # The port first: a start that cannot listen must not create a database, an admin
    # or a token (uvicorn would bind only after the app's start-up has made them).
    sock = _bind(settings.host, settings.port)
    bound = int(sock.getsockname()[1])  # --port 0 picks a free one
    # the port listened on: with the host, this server's worker id on PostgreSQL
    settings.port = bound
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    if no_runners and not settings.database_url:
        sock.close()
        raise click.ClickException(
            "--no-runners needs a database other servers share: set VENDO_DATABASE_URL "
            "(PostgreSQL); with the embedded SQLite nothing would ever run the predictions"
        )
    app = create_app(settings, examples=examples, run_scheduler=not no_runners)
    scheme = "https" if ssl_certfile else "http"
    url = f"{scheme}://{_client_host(settings.host)}:{bound}"
    config = _uvicorn_config(app, settings, bound, ssl_certfile, ssl_keyfile)
    startup_errors = _OneLineStartupError()
    logging.getLogger("uvicorn.error").addFilter(startup_errors)
    _check_before_start(config, settings, sock, tls=bool(ssl_certfile))
    data = Path(settings.data_dir)

    def started() -> None:
        startup_errors.active = False  # later failures keep their traceback
        record_server(data, url)
        click.echo(
            f"Vendo serving Replicate's API at {url}/v1 (data in {data.resolve()})", err=True
        )

    server = _Server(config, started, lambda: forget_server(data))
    # found lost (scaled mode), the app stops the server; not by a signal, which uvicorn
    # re-raises once stopped (the exit status must say so: 1)
    app.state.stop_server = functools.partial(setattr, server, "should_exit", True)
    try:
        server.run(sockets=[sock])
    finally:
        forget_server(data)
        sock.close()
    if server.started is False:
        sys.exit(1)
    if getattr(app.state, "lost", False):
        # the heartbeat logged why; a supervisor restarts it, as an agent
        click.echo("vendo serve stopped: it was found lost and its jobs recovered", err=True)
        sys.exit(1)


def _settings(data_dir: Path | None, host: str | None, port: int | None) -> Settings:
    """The environment's settings, with what the command line gave over them."""
    from vendo.config import Settings

    overrides: dict[str, object] = {}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    return Settings(**overrides)  # type: ignore[arg-type]


def _uvicorn_config(
    app: Any,
    settings: Settings,
    port: int,
    ssl_certfile: str | None,
    ssl_keyfile: str | None,
) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=settings.host,
        port=port,
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        http="httptools" if importlib.util.find_spec("httptools") else "h11",
        lifespan="on",
        # vendo.api reads X-Forwarded-Proto/Host itself (base_url); uvicorn's layer only
        # rewrites the client address, which only the access log shows
        proxy_headers=settings.access_log,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
        log_level="info",
        access_log=settings.access_log,
    )


def _check_before_start(
    config: uvicorn.Config, settings: Settings, sock: socket.socket, *, tls: bool
) -> None:
    """The TLS files and the secrets key, each refused in one line (closing ``sock``)
    rather than with a traceback from uvicorn or the app's start-up."""
    from vendo.errors import VendoError
    from vendo.store.sealing import SecretBox

    try:
        config.load()  # the TLS files are read here: a bad one is one line, not a traceback
    except (OSError, ValueError) as exc:
        sock.close()
        what = "load the TLS certificate or key" if tls else "start"
        raise click.ClickException(f"cannot {what}: {exc}") from None
    try:
        # after the port and TLS checks, since a missing key file is created here; an
        # unusable key is one clear line, not a traceback from the lifespan
        SecretBox.from_settings(settings)
    except VendoError as exc:
        sock.close()
        raise click.ClickException(exc.detail) from exc


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        reason = exc.strerror or str(exc)
        hint = (
            "another program (or another `vendo serve`) uses it: choose a free port with "
            "--port or VENDO_PORT"
            if exc.errno == errno.EADDRINUSE
            else "check --host/--port (VENDO_HOST, VENDO_PORT)"
        )
        raise click.ClickException(f"cannot listen on {host}:{port}: {reason}; {hint}") from None
    except (OverflowError, socket.gaierror) as exc:
        sock.close()
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc}") from None
    sock.set_inheritable(True)
    return sock


def _client_host(host: str) -> str:
    """How a client on this machine reaches a server bound to ``host``."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


class _Server(uvicorn.Server):
    """uvicorn's server, recording where it listens while it does."""

    def __init__(
        self,
        config: uvicorn.Config,
        on_started: Callable[[], object],
        on_stopped: Callable[[], object],
    ) -> None:
        super().__init__(config)
        self.on_started = on_started
        self.on_stopped = on_stopped

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self.on_started()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # here, not after run(): uvicorn re-raises SIGTERM/SIGINT once it has stopped,
        # which ends the process before code after run() would see it
        self.on_stopped()
        await super().shutdown(sockets=sockets)


class _OneLineStartupError(logging.Filter):
    """A start-up that fails inside the app is one error line, not a traceback.

    Starlette hands uvicorn the formatted traceback as the failure message; this keeps
    its exception line and drops uvicorn's own "Application startup failed" after it."""

    active = True

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.active:
            return True
        message = record.getMessage()
        if message.startswith("Application startup failed"):
            return False
        if message.startswith("Traceback (most recent call last)"):
            record.msg = f"Vendo could not start: {_exception_line(message)}"
            record.args = ()
            record.exc_info = None
        return True


def _exception_line(trace: str) -> str:
    lines = trace.rstrip().splitlines()
    last = max(i for i, line in enumerate(lines) if line.startswith("Traceback"))
    for line in lines[last + 1 :]:
        if line and not line.startswith(" "):
            return line
    return lines[-1]
