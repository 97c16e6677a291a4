"""``vendo train OWNER/NAME[:VERSION] --destination OWNER/NAME -i name=value ...``: a
training through a server.

Like ``vendo run``: resolves the trainer version (the model's latest when none is
given), uploads ``-i name=@path`` files, creates the training, shows its logs as they
come, and prints the new version (``owner/name:id``) on stdout once it succeeds. A
destination that does not exist yet is created first (private, on the trainer's
hardware), as the web page's Train tab does. A failed or canceled training exits 1;
Ctrl-C cancels it.
"""

from __future__ import annotations

import sys
from typing import Any

import click
import httpx

from vendo.cli.options import token_option, url_option

__all__ = ["train"]


def ensure_destination(client: httpx.Client, destination: str, trainer: str) -> None:
    """Create ``destination`` (private, on the trainer's hardware) when it is missing;
    the server answers why when it may not be created (another owner's name)."""
    from vendo.cli.remote import fail

    owner, slash, name = destination.partition("/")
    if not slash or not owner or not name or "/" in name or ":" in name:
        raise click.UsageError(f"--destination is a model, OWNER/NAME: got {destination!r}")
    found = client.get(f"/v1/models/{owner}/{name}")
    if found.status_code != 404:
        fail(found)
        return
    model = client.get(f"/v1/models/{trainer}")
    fail(model)
    body: dict[str, Any] = {
        "owner": owner,
        "name": name,
        "visibility": "private",
        "hardware": model.json().get("hardware") or "cpu",
    }
    created = client.post("/v1/models", json=body)
    fail(created)
    click.echo(f"Created the model {owner}/{name} (private) for the trained version", err=True)


@click.command()
@click.argument("ref", metavar="OWNER/NAME[:VERSION]")
@click.option(
    "-d", "--destination", required=True, metavar="OWNER/NAME",
    help="The model the trained version is added to (created, private, when missing).",
)  # fmt: skip
@click.option("-i", "--input", "pairs", multiple=True, help="name=value, or name=@file to upload.")
@click.option("--json", "json_input", help="All inputs as one JSON object.")
@url_option
@token_option
@click.option("--quiet", "-q", is_flag=True, help="Do not print the training's logs.")
def train(
    ref: str,
    destination: str,
    pairs: tuple[str, ...],
    json_input: str | None,
    url: str | None,
    token: str | None,
    quiet: bool,
) -> None:
    """Train OWNER/NAME (its latest version unless :VERSION is given) into DESTINATION."""
    from vendo.cli.remote import api_client, fail
    from vendo.cli.run import command_line_input, follow, model_version, split_ref

    owner, name, version_id = split_ref(ref)
    with api_client(url, token) as client:
        version = model_version(client, owner, name, version_id)
        payload = command_line_input(client, version, "TrainingInput", pairs, json_input)
        ensure_destination(client, destination, f"{owner}/{name}")
        response = client.post(
            f"/v1/models/{owner}/{name}/versions/{version['id']}/trainings",
            json={"destination": destination, "input": payload},
        )
        fail(response)
        training = response.json()
        try:
            training = follow(client, training, quiet)
        except KeyboardInterrupt:
            click.echo("\nCanceling the training...", err=True)
            client.post(training["urls"]["cancel"])
            sys.exit(130)
        status = training.get("status")
        if status == "failed":
            raise click.ClickException(f"training failed: {training.get('error')}")
        if status == "canceled":
            raise click.ClickException("training was canceled")
        output = training.get("output") or {}
        click.echo(f"weights: {output.get('weights')}", err=True)
        click.echo(output.get("version"))
