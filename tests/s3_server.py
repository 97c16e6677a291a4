"""An S3 API server for the storage tests: moto's standalone server (``moto[server]``),
started as a child process on a free loopback port and stopped by its PID.

``tests/conftest.py`` starts one per session (fixture ``s3_server``) and gives each test
a fresh bucket (``s3_bucket``). Without moto the tests skip, and fail instead when
``VENDO_REQUIRE_S3=1`` (CI sets it in ``.ci/run``).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from support import free_port, http_ready, start_server, stop_process

__all__ = ["AWS_ENV", "S3Server", "moto_missing", "require_s3", "start_s3_server"]

# moto accepts any credentials; boto3 only needs some (never a real account's)
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "vendo-test",
    "AWS_SECRET_ACCESS_KEY": "vendo-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def require_s3() -> bool:
    return os.environ.get("VENDO_REQUIRE_S3", "") not in ("", "0")


def moto_missing() -> str | None:
    """Why moto's server cannot start here, or None."""
    for module in ("moto.server", "flask", "boto3"):
        try:
            found = importlib.util.find_spec(module)
        except ModuleNotFoundError:
            found = None
        if found is None:
            return f"{module} is not installed: pip install 'moto[server]' boto3"
    return None


@dataclass
class S3Server:
    endpoint: str
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        stop_process(self.process)


def start_s3_server(log_dir: Path, host: str = "127.0.0.1") -> S3Server:
    """moto's server on ``host`` (loopback, or an address other network namespaces
    reach)."""
    port = free_port()
    endpoint = f"http://{host}:{port}"
    log = log_dir / "moto.log"
    env = {**os.environ, **AWS_ENV}
    process = start_server(
        [sys.executable, "-m", "moto.server", "-H", host, "-p", str(port)],
        ready=http_ready(f"{endpoint}/moto-api/"),
        log_path=log,
        env=env,
    )
    return S3Server(endpoint, process)
