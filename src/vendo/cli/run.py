"""``vendo run OWNER/NAME[:VERSION] -i name=value ...``: a prediction through a server.

Talks to the server's Replicate-compatible API with httpx: resolves the version (the
model's latest when none is given), uploads ``-i name=@path`` files to ``/v1/files``,
creates the prediction (waiting up to 60 s on the request, then polling), streams new
log text to stderr while it runs, prints the output (strings as they are, the rest as
JSON) and downloads output files into the working directory (or ``-o DIR``), printing
their paths in their place. A failed or canceled prediction exits 1; Ctrl-C cancels it.
"""

from __future__ import annotations

import base64
import json
import mimetypes
import sys
import time
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import click
import httpx

from vendo.cli.inputs import parse_inputs
from vendo.cli.options import token_option, url_option
from vendo.status import TERMINAL

__all__ = ["command_line_input", "follow", "model_version", "run", "split_ref", "upload"]


def split_ref(ref: str) -> tuple[str, str, str | None]:
    model, _, version = ref.partition(":")
    owner, sep, name = model.partition("/")
    if not sep or not owner or not name or "/" in name:
        raise click.UsageError(f"expected OWNER/NAME[:VERSION], got {ref!r}")
    return owner, name, version or None


def model_version(
    client: httpx.Client, owner: str, name: str, version: str | None
) -> dict[str, Any]:
    from vendo.cli.remote import fail

    if version:
        response = client.get(f"/v1/models/{owner}/{name}/versions/{version}")
        fail(response)
        found: dict[str, Any] = response.json()
        return found
    response = client.get(f"/v1/models/{owner}/{name}")
    fail(response)
    model = response.json()
    latest = model.get("latest_version")
    build = model.get("latest_build") or {}
    status = build.get("status")
    if not latest:
        if status == "building":
            raise click.ClickException(
                f"{owner}/{name} is still building its first version: "
                "run again once vendo push has finished"
            )
        if status == "failed":
            raise click.ClickException(
                f"{owner}/{name} has no version that runs: its latest push failed to build: "
                f"{build.get('error')} (build log: {build.get('urls', {}).get('log')})"
            )
        raise click.ClickException(f"{owner}/{name} has no versions yet: vendo push one first")
    if status in ("building", "failed"):
        # the model still runs its latest good version: say that a newer push is not it
        what = "is still building" if status == "building" else "failed to build"
        click.echo(
            f"note: the latest push of {owner}/{name} {what}; running version {latest['id']}",
            err=True,
        )
    return dict(latest)


def upload(client: httpx.Client, path: Path) -> str:
    from vendo.cli.remote import fail

    if not path.is_file():
        raise click.UsageError(f"input file {path} does not exist")
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    with path.open("rb") as fh:
        response = client.post(
            "/v1/files", files={"content": (path.name, fh, content_type)}, timeout=None
        )
    fail(response)
    return str(response.json()["urls"]["get"])


def command_line_input(
    client: httpx.Client,
    version: dict[str, Any],
    component: str,
    pairs: tuple[str, ...],
    json_input: str | None,
) -> dict[str, Any]:
    """The inputs given as ``-i name=value`` (files uploaded) or ``--json``, typed by the
    version's ``component`` schema (``Input``, or ``TrainingInput`` for a training)."""
    document = version.get("openapi_schema") or {}
    props = document.get("components", {}).get("schemas", {}).get(component, {})
    return parse_inputs(
        pairs,
        json_input,
        props.get("properties", {}),
        lambda path: upload(client, Path(path).expanduser()),
    )


class _Downloads:
    """Output file URLs of this server (and data: URIs) become local files."""

    def __init__(self, client: httpx.Client, folder: Path) -> None:
        self.client = client
        self.folder = folder
        self.base = str(client.base_url).rstrip("/")

    def place(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: self.place(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.place(v) for v in value]
        if isinstance(value, str):
            if value.startswith("data:"):
                return str(self._data_uri(value))
            if self._is_file_url(value):
                return str(self._download(value))
        return value

    def _is_file_url(self, value: str) -> bool:
        parts = urlsplit(value)
        return parts.scheme in ("http", "https") and parts.path.startswith("/v1/files/")

    def _target(self, name: str) -> Path:
        from vendo.cli.outputs import output_target

        target = output_target(self.folder, name)
        return target

    def _download(self, url: str) -> Path:
        from vendo.cli.remote import fail

        with self.client.stream("GET", url) as response:
            if response.status_code >= 400:
                response.read()
                fail(response)
            # the model's own file name, as the server sends it
            name = _filename(response.headers.get("content-disposition", ""))
            if not name:
                mime = response.headers.get("content-type", "").split(";")[0].strip()
                name = "output" + (mimetypes.guess_extension(mime) or "")
            target = self._target(name)
            with target.open("wb") as out:
                for chunk in response.iter_bytes():
                    out.write(chunk)
        return target

    def _data_uri(self, uri: str) -> Path:
        header, _, data = uri.partition(",")
        mime = header[5:].split(";")[0] or "application/octet-stream"
        raw = base64.b64decode(data) if ";base64" in header else unquote(data).encode()
        target = self._target("output" + (mimetypes.guess_extension(mime) or ""))
        target.write_bytes(raw)
        return target


def _filename(disposition: str) -> str:
    """The file name of a Content-Disposition header (``filename*=`` included)."""
    if not disposition:
        return ""
    message = Message()
    message["content-disposition"] = disposition
    return message.get_filename() or ""


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, indent=2)


def _output_schema(version: dict[str, Any]) -> dict[str, Any]:
    schema = version.get("openapi_schema") or {}
    found: dict[str, Any] = schema.get("components", {}).get("schemas", {}).get("Output", {})
    return found


class _Live:
    """Prints a text iterator's items as they arrive (a token stream stays on one line)."""

    def __init__(self, concatenate: bool) -> None:
        self.concatenate = concatenate
        self.printed = 0

    def update(self, output: Any) -> None:
        if not isinstance(output, list) or not all(isinstance(v, str) for v in output):
            return
        for item in output[self.printed :]:
            if item.startswith(("http://", "https://", "data:")):
                return  # files are downloaded at the end, not printed
            click.echo(item, nl=not self.concatenate)
            self.printed += 1


def follow(
    client: httpx.Client, prediction: dict[str, Any], quiet: bool, live: _Live | None = None
) -> dict[str, Any]:
    """Poll a prediction (or training) to its end, writing new log text to stderr."""
    from vendo.cli.remote import fail

    shown = 0
    url = prediction["urls"]["get"]
    while True:
        logs = prediction.get("logs") or ""
        if not quiet and len(logs) > shown:
            sys.stderr.write(logs[shown:])
            sys.stderr.flush()
            shown = len(logs)
        if live is not None and prediction.get("status") != "failed":
            live.update(prediction.get("output"))
        if prediction.get("status") in TERMINAL:
            return prediction
        time.sleep(0.25 if live is not None else 0.5)
        response = client.get(url)
        fail(response)
        prediction = response.json()


@click.command()
@click.argument("ref", metavar="OWNER/NAME[:VERSION]")
@click.option("-i", "--input", "pairs", multiple=True, help="name=value, or name=@file to upload.")
@click.option("--json", "json_input", help="All inputs as one JSON object.")
@click.option(
    "-o", "--output-dir", type=click.Path(path_type=Path), default=Path("."),
    help="Where output files are saved (default: the working directory).",
)  # fmt: skip
@url_option
@token_option
@click.option("--quiet", "-q", is_flag=True, help="Do not print the model's logs.")
def run(
    ref: str,
    pairs: tuple[str, ...],
    json_input: str | None,
    output_dir: Path,
    url: str | None,
    token: str | None,
    quiet: bool,
) -> None:
    """Run a prediction of OWNER/NAME (its latest version unless :VERSION is given)."""
    from vendo.cli.remote import api_client, fail

    owner, name, version_id = split_ref(ref)
    with api_client(url, token) as client:
        version = model_version(client, owner, name, version_id)
        payload = command_line_input(client, version, "Input", pairs, json_input)
        output_schema = _output_schema(version)
        live = None
        if output_schema.get("x-cog-array-type") == "iterator":
            live = _Live(output_schema.get("x-cog-array-display") == "concatenate")
        response = client.post(
            "/v1/predictions",
            json={"version": version["id"], "input": payload},
            # an iterator is shown as it grows: poll at once instead of waiting
            headers={} if live is not None else {"Prefer": "wait=60"},
        )
        fail(response)
        prediction = response.json()
        try:
            prediction = follow(client, prediction, quiet, live)
        except KeyboardInterrupt:
            click.echo("\nCanceling the prediction...", err=True)
            client.post(prediction["urls"]["cancel"])
            sys.exit(130)
        status = prediction.get("status")
        if live is not None and live.printed and live.concatenate:
            click.echo()
        if status == "failed":
            raise click.ClickException(f"prediction failed: {prediction.get('error')}")
        if status == "canceled":
            raise click.ClickException("prediction was canceled")
        output = prediction.get("output")
        if live is not None and isinstance(output, list):
            output = output[live.printed :]
            if not output:
                return
        output = _Downloads(client, output_dir).place(output)
        if isinstance(output, list) and live is not None:
            for item in output:
                click.echo(_show(item))
            return
        click.echo(_show(output))
