"""Settings, declared once: name, type, default and help text.

Every setting is read from the environment as ``VENDO_<NAME>`` (for example
``VENDO_DATA_DIR``), then from a ``.env`` file in the working directory, then its
default. The CLI's options override them. ``docs/settings.md`` is generated from this
class (``python -m vendo.config``) and a test keeps the two in step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "settings_markdown"]


class Settings(BaseSettings):
    """Vendo's settings. Field descriptions are the user-facing help text."""

    model_config = SettingsConfigDict(
        env_prefix="VENDO_",
        env_file=".env",
        extra="ignore",
        validate_default=True,
    )

    # --- where things live -------------------------------------------------------
    data_dir: Path = Field(
        Path(".vendo"),
        description="Folder for the embedded database, files, environments and logs.",
    )
    database_url: str | None = Field(
        None,
        description="PostgreSQL URL for scaled mode (postgresql://...). Unset: SQLite in the "
        "data dir.",
    )
    # SecretStr: never shown in a repr or a log line of the settings
    secrets_key: SecretStr | None = Field(
        None,
        description="Key that encrypts `cog.Secret` inputs at rest (a Fernet key: 32 url-safe "
        "base64 bytes). Several, comma-separated: the first encrypts, all decrypt (rotation). "
        "Unset: `secrets.key` in the data dir, created with mode 0600 on first start. Every "
        "process sharing a PostgreSQL database needs the same key.",
    )
    storage_url: str | None = Field(
        None,
        description="S3-compatible bucket for uploaded files, prediction outputs and model "
        "packages (`s3://bucket` or `s3://bucket/prefix`), shared by every server and agent of "
        "a scaled deployment. Credentials and region come from the usual AWS variables "
        "(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION, AWS_PROFILE) or an "
        "instance role. Needs `vendo[s3]`. Unset: files in the data dir.",
    )
    storage_endpoint_url: str | None = Field(
        None,
        description="Endpoint of an S3-compatible server other than AWS (MinIO, Cloudflare R2, "
        "Ceph), e.g. http://minio:9000. Unset: AWS S3.",
    )
    cache_ttl: float = Field(
        5.0,
        description="Seconds the tokens, models, versions and deployments read by prediction "
        "requests stay cached in memory. Changes made through this server, or by another "
        "process on the same data dir (`vendo tokens revoke`), apply at once; changes made "
        "by a process sharing only the database apply within this delay. 0 turns it off.",
    )

    # --- HTTP server -------------------------------------------------------------
    host: str = Field("127.0.0.1", description="Address the HTTP server binds to.")
    port: int = Field(5000, ge=0, le=65535, description="Port the HTTP server listens on.")
    public_url: str | None = Field(
        None,
        description="Absolute URL clients reach the server at, used in `urls` and file links. "
        "Unset: taken from each request (honouring X-Forwarded-Proto/Host).",
    )
    access_log: bool = Field(
        False,
        description="Log one line per HTTP request (`vendo serve`). Off by default: at "
        "thousands of predictions per second it costs more than the request itself.",
    )
    api_token: str | None = Field(
        None,
        description="When set before a fresh data dir is first served, it becomes the admin's "
        "API token.",
    )

    hardware_file: Path | None = Field(
        None,
        description="TOML file of the hardware catalogue (`[[hardware]]` tables with sku, name, "
        "cpus, memory_gb, price_per_second and optionally gpus, gpu_model, vram_gb); see "
        "docs/hardware.md. Unset: `cpu` and Replicate's GPU SKUs at Replicate's prices.",
    )
    gpu_as_cpu: bool = Field(
        False,
        description="Offer GPU SKUs on a machine without (enough) GPUs, running them on the "
        "CPU: for developing against a model's production hardware. Logs a warning.",
    )

    examples_dir: Path | None = Field(
        None,
        description="Folder of example models that `vendo serve --examples` pushes. Unset: "
        "`examples/` of the source checkout, else `./examples`.",
    )

    # --- clients (vendo push / run) ---------------------------------------------
    url: str | None = Field(
        None,
        description="Server URL for client commands (push, run). Unset: the address a "
        "`vendo serve` on this machine recorded in its data dir (`server.json`), else "
        "http://127.0.0.1:5000.",
    )

    # --- runners -----------------------------------------------------------------
    idle_timeout: float = Field(
        300.0,
        description="Seconds a warm runner with no work stays up before it is stopped "
        "(scale to zero).",
    )
    pool_max_instances: int = Field(
        1,
        ge=0,
        description="Most instances of a version's shared pool (predictions not made through "
        "a deployment); the autoscaler adds them as its queue grows and stops them after the "
        "idle timeout. Deployments set their own min and max.",
    )
    agent_heartbeat_interval: float = Field(
        5.0,
        gt=0,
        description="Scaled mode: seconds between an agent's heartbeats (`vendo agent`), and "
        "between every process's looks for agents that stopped heartbeating.",
    )
    agent_lost_timeout: float = Field(
        30.0,
        gt=0,
        description="Scaled mode: seconds without a heartbeat after which an agent is lost "
        "(killed, its host or network gone): any process then puts its claimed but unstarted "
        "predictions back in the queue and fails its running ones as interrupted. Keep it "
        "several heartbeats long.",
    )
    strict_placement: bool = Field(
        False,
        description="Count CPU cores and memory as capacity when placing instances: an "
        "instance whose SKU's cores or memory are taken waits (its predictions stay queued). "
        "Off: cores and memory are shared between instances (each still gets its affinity "
        "and memory limit); GPUs are never shared.",
    )
    metrics_public: bool = Field(
        False,
        description="Serve `GET /metrics` (Prometheus) without a token, for a scraper on a "
        "private network. Off: it needs an API token like the API.",
    )
    usage_flush_interval: float = Field(
        10.0,
        gt=0,
        description="Seconds between writes of the runners' metered time (setting up, idle, "
        "active) to the database; a runner's last seconds are written when it stops. Usage "
        "reports and credit lag by at most this much.",
    )
    setup_timeout: float = Field(
        0.0, description="Seconds setup() may take before the runner fails; 0 = no limit."
    )
    cancel_grace: float = Field(
        10.0,
        description="Seconds a canceled prediction may take to stop before its runner is "
        "killed and replaced.",
    )
    max_restarts: int = Field(
        3,
        description="Crash-restarts in a row after which a runner is marked defunct.",
    )

    # --- environments ------------------------------------------------------------
    allow_nearest_python: bool = Field(
        False,
        description="If the Python version asked for in cog.yaml is missing and cannot be "
        "downloaded, use the nearest installed one (with a warning) instead of failing.",
    )
    cog_dependencies: bool = Field(
        True,
        description="Install what Cog's own Python package depends on (requests, PyYAML, "
        "pydantic, fastapi, structlog, ...) into every model environment, as a Cog image has "
        "them: models import them without declaring them. A model's own requirement for one "
        "of them wins.",
    )
    install_system_packages: bool = Field(
        False,
        description="Install missing cog.yaml system_packages with apt-get (needs root).",
    )
    strict_system_packages: bool = Field(
        True,
        description="Fail a build when a cog.yaml system package is not installed (the error "
        "gives the apt-get command). Off: build anyway, with a warning.",
    )

    # --- files, retention --------------------------------------------------------
    retention: float = Field(
        3600.0,
        description="Seconds after completion when a prediction's inputs, outputs and logs "
        "are removed (data_removed).",
    )
    file_expiry: float = Field(86400.0, description="Seconds an uploaded file (/v1/files) is kept.")
    signed_url_expiry: float = Field(
        3600.0, description="Seconds a signed file or output URL stays valid."
    )
    max_upload_bytes: int = Field(
        100 * 1024 * 1024, description="Largest accepted upload or input file, in bytes."
    )
    max_package_bytes: int = Field(
        10 * 1024**3,
        description="Largest accepted model package (`vendo push`), in bytes, packed and unpacked.",
    )
    max_request_bytes: int = Field(
        16 * 1024 * 1024,
        description="Largest accepted JSON or text request body (a prediction with its "
        "inputs, a search), in bytes; larger ones answer 413. Room for a data: URI input "
        "of VENDO_MAX_DATA_URI_BYTES. File uploads and model packages have their own limits.",
    )
    max_json_depth: int = Field(
        64,
        ge=1,
        le=500,  # below Python's recursion limit, which the JSON parser and encoder use
        description="Deepest nesting of arrays and objects accepted in a JSON request "
        "body; deeper ones answer 422.",
    )
    max_data_uri_bytes: int = Field(
        10 * 1024 * 1024, description="Largest accepted data: URI input, in bytes (decoded)."
    )
    allow_private_urls: bool = Field(
        True,
        description="Allow input URLs and webhooks that point at loopback (127.0.0.0/8, ::1) "
        "or private addresses (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7). "
        "Link-local, cloud metadata, unspecified (0.0.0.0, ::) and the other special-purpose "
        "addresses are always refused (docs/api.md, Address policy).",
    )

    # --- credit, rate limits (docs/usage.md) ---------------------------------------
    credit_check_interval: float = Field(
        5.0,
        gt=0,
        description="Seconds an account's remaining credit stays cached by a server, and "
        "between its checks for accounts out of credit (whose private runners it then "
        "stops). Credit set through this server applies at once; `vendo credit set` within "
        "this delay.",
    )
    rate_limit_create: float = Field(
        0.0,
        ge=0,
        description="Predictions and trainings one API token may create per minute, on "
        "average (Replicate: 600). 0 = no limit. Each server process counts on its own.",
    )
    rate_limit_create_burst: int = Field(
        10,
        ge=1,
        description="Creates one token may send at once, above the average rate.",
    )
    rate_limit_other: float = Field(
        0.0,
        ge=0,
        description="Other API requests one token may send per minute, on average "
        "(Replicate: 3000). 0 = no limit. Each server process counts on its own.",
    )
    rate_limit_other_burst: int = Field(
        50,
        ge=1,
        description="Other requests one token may send at once, above the average rate.",
    )

    # --- webhooks ----------------------------------------------------------------
    webhook_timeout: float = Field(10.0, description="Seconds one webhook delivery may take.")
    webhook_retries: int = Field(
        6, description="Attempts to deliver a `completed` webhook before giving up."
    )
    throttle_interval: float = Field(
        0.5, description="Least seconds between two `output`/`logs` webhooks of a prediction."
    )

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        # runners work in their model's folder: a relative data dir (the default,
        # ./.vendo) would name files there that do not exist (input files, weights)
        return value.expanduser().absolute()


def settings_markdown() -> str:
    """The settings table for docs/settings.md."""
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default: Any = field.default
        shown = "unset" if default is None else f"`{default}`"
        lines.append(f"| `VENDO_{name.upper()}` | {shown} | {field.description} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print("# Settings\n")
    print(settings_markdown(), end="")
