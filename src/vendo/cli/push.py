"""``vendo push [DIR] OWNER/NAME``: upload a model to a server as a new version.

Packs the project (skipping ``.git``, virtual environments, caches and whatever
``.dockerignore``/``.cogignore`` exclude), uploads it to
``POST /v1/models/{owner}/{name}/versions``, shows the server's build as it happens
and prints the new version id on stdout (progress goes to stderr). The version id is
a hash of the model and the package's content: pushing unchanged files to the same
model gives the same id; a failed build prints its reason and the build log's URL.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import click

from vendo.cli.options import token_option, url_option

__all__ = ["push"]

_CHUNK = 1 << 20


def _split(args: tuple[str, ...]) -> tuple[Path, str, str]:
    if len(args) == 1:
        directory, target = Path("."), args[0]
    elif len(args) == 2:
        directory, target = Path(args[0]), args[1]
    else:
        raise click.UsageError("usage: vendo push [DIR] OWNER/NAME")
    owner, sep, name = target.partition("/")
    if not sep or not owner or not name or "/" in name or ":" in name:
        raise click.UsageError(f"expected OWNER/NAME, got {target!r}")
    if not directory.is_dir():
        raise click.UsageError(
            f"{directory}: no such folder (give the model's folder, then OWNER/NAME)"
        )
    if not (directory / "cog.yaml").is_file():
        raise click.UsageError(f"{directory} has no cog.yaml")
    return directory, owner, name


def _read(path: Path, note: str) -> Iterator[bytes]:
    # said once the connection is open: a server that cannot be reached is then the
    # only line the command prints
    click.echo(note, err=True)
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            yield chunk


@click.command()
@click.argument("args", nargs=-1, required=True, metavar="[DIR] OWNER/NAME")
@url_option
@token_option
@click.option("--private", is_flag=True, help="Create the model private if it is new.")
@click.option("--quiet", "-q", is_flag=True, help="Show build steps only, not the build log.")
def push(
    args: tuple[str, ...], url: str | None, token: str | None, private: bool, quiet: bool
) -> None:
    """Upload the model in DIR (default .) to a server as a new version of OWNER/NAME."""

    directory, owner, name = _split(args)
    stage = ["packing"]  # where a Ctrl-C found the push, for its one line
    try:
        version_id = _push(directory, owner, name, url, token, private, quiet, stage)
    except KeyboardInterrupt:
        click.echo(f"Error: {_interrupted(stage[0], owner, name)}", err=True)
        sys.exit(130)  # as `vendo run` on Ctrl-C
    click.echo(version_id)


def _interrupted(stage: str, owner: str, name: str) -> str:
    if stage == "building":
        return (
            f"interrupted: the server goes on building {owner}/{name} from the upload it has; "
            f"`vendo run {owner}/{name}` uses the new version once it is ready"
        )
    return f"interrupted while {stage}: nothing reached the server, {owner}/{name} is unchanged"


def _push(
    directory: Path,
    owner: str,
    name: str,
    url: str | None,
    token: str | None,
    private: bool,
    quiet: bool,
    stage: list[str],
) -> str:
    from vendo.cli.remote import api_client, fail
    from vendo.packages import iter_project_files, make_archive

    files = list(iter_project_files(directory))
    fd, temp = tempfile.mkstemp(suffix=".tar.gz", prefix="vendo-push-")
    archive = Path(temp)
    try:
        with os.fdopen(fd, "wb") as out:
            make_archive(directory, out)
        size = archive.stat().st_size
        note = f"Packed {len(files)} files ({size / 1e6:.1f} MB)"
        params = {"visibility": "private"} if private else {}
        stage[0] = "uploading"
        with (
            api_client(url, token) as client,
            client.stream(
                "POST",
                f"/v1/models/{owner}/{name}/versions",
                params=params,
                content=_read(archive, note),
                headers={
                    "Content-Type": "application/gzip",
                    "Content-Length": str(size),
                    "Accept": "application/x-ndjson",
                },
            ) as response,
        ):
            if response.status_code >= 400:
                response.read()
                fail(response)
            stage[0] = "building"  # the whole package is in: the server has accepted it
            return _follow(response.iter_lines(), quiet)
    finally:
        archive.unlink(missing_ok=True)


def _follow(lines: Iterator[str], quiet: bool) -> str:
    """Print the build as it streams; return the version id or exit 1 on failure."""
    for line in lines:
        if not line.strip():
            continue
        event = json.loads(line)
        kind = event.get("type")
        if kind == "step":
            click.secho(f"==> {event['text']}", err=True, bold=True)
        elif kind == "log":
            if not quiet and not str(event.get("text", "")).startswith("==> "):
                click.echo(event["text"], err=True)
        elif kind == "version":
            version = event["version"]
            note = "" if event.get("created", True) else " (unchanged: it existed already)"
            click.secho(f"Version {event['model']}:{version['id']}{note}", err=True, fg="green")
            return str(version["id"])
        elif kind == "error":
            tail = event.get("log_tail")
            if tail and quiet:
                click.echo(tail, err=True)
            click.secho(f"Push failed: {event.get('detail')}", err=True, fg="red")
            build = event.get("build")
            if isinstance(build, dict) and build.get("urls", {}).get("log"):
                # the push was accepted: the model records this failed build
                click.echo(f"Build log: {build['urls']['log']}", err=True)
            sys.exit(1)
    raise click.ClickException("the server closed the connection before the build ended")
