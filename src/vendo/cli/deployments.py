"""``vendo deployments create|list|get|update|delete``: a server's deployments, through
its ``/v1/deployments`` API (docs/deployments.md)."""

from __future__ import annotations

import json
from typing import Any

import click

from vendo.cli.options import token_option, url_option
from vendo.cli.remote import ServerClient, api_client, fail

__all__ = ["deployments"]


def _client(ctx: click.Context) -> ServerClient:
    options = ctx.find_object(dict) or {}
    return api_client(options.get("url"), options.get("token"))


def _remember(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    # --url/--token after the subcommand (where push and run take them) win over the
    # group's, so both `vendo deployments --token T list` and `... list --token T` work
    if value is not None:
        ctx.ensure_object(dict)[param.name or ""] = value


def _server_options(func: Any) -> Any:
    for option in (url_option, token_option):
        func = option(func)
    for param in func.__click_params__[-2:]:
        param.callback, param.expose_value = _remember, False
    return func


def _line(d: dict[str, Any]) -> str:
    release = d["current_release"]
    config = release["configuration"]
    scale = f"{config['min_instances']}-{config['max_instances']}"
    state = "disabled" if config["max_instances"] == 0 else f"instances {scale}"
    return (
        f"{d['owner']}/{d['name']}  release {release['number']}  "
        f"{release['model']}:{release['version'][:12]}  {config['hardware']}  {state}"
    )


def _show(d: dict[str, Any], as_json: bool) -> None:
    click.echo(json.dumps(d, indent=2) if as_json else _line(d))


def _split(target: str) -> tuple[str, str]:
    owner, _, name = target.partition("/")
    if not owner or not name or "/" in name:
        raise click.UsageError(f"expected OWNER/NAME, got {target!r}")
    return owner, name


_json_option = click.option("--json", "as_json", is_flag=True, help="Print the JSON object.")


def _scale_options(required: bool) -> Any:
    def apply(func: Any) -> Any:
        for flag, what in (("--max-instances", "most"), ("--min-instances", "fewest")):
            func = click.option(
                flag,
                type=click.IntRange(0, 100),
                required=required,
                help=f"The {what} instances the autoscaler keeps (0-100).",
            )(func)
        return func

    return apply


@click.group()
@url_option
@token_option
@click.pass_context
def deployments(ctx: click.Context, url: str | None, token: str | None) -> None:
    """A server's deployments: a model version on chosen hardware with its own queue
    and instances."""
    ctx.obj = {"url": url, "token": token}


def _subcommand(name: str) -> Any:
    return lambda func: deployments.command(name)(_server_options(func))


@_subcommand("list")
@_json_option
@click.pass_context
def list_command(ctx: click.Context, as_json: bool) -> None:
    """List your deployments."""
    with _client(ctx) as client:
        url: str | None = "/v1/deployments"
        while url:
            r = client.get(url)
            fail(r)
            page = r.json()
            for d in page["results"]:
                _show(d, as_json)
            url = page.get("next")


@_subcommand("get")
@click.argument("target", metavar="OWNER/NAME")
@_json_option
@click.pass_context
def get_command(ctx: click.Context, target: str, as_json: bool) -> None:
    """Show a deployment's current release."""
    owner, name = _split(target)
    with _client(ctx) as client:
        r = client.get(f"/v1/deployments/{owner}/{name}")
        fail(r)
        _show(r.json(), as_json)


@_subcommand("create")
@click.argument("name")
@click.option("--model", required=True, help="The model, as OWNER/NAME.")
@click.option("--version", "version", required=True, help="The model's version id.")
@click.option("--hardware", required=True, help="The SKU (see GET /v1/hardware), e.g. cpu.")
@_scale_options(required=True)
@_json_option
@click.pass_context
def create_command(ctx: click.Context, name: str, as_json: bool, **fields: Any) -> None:
    """Create deployment NAME under your account (release 1)."""
    with _client(ctx) as client:
        r = client.post("/v1/deployments", json={"name": name, **fields})
        fail(r)
        _show(r.json(), as_json)


@_subcommand("update")
@click.argument("target", metavar="OWNER/NAME")
@click.option("--version", "version", default=None, help="Deploy this version of the model.")
@click.option("--hardware", default=None, help="Move to this SKU.")
@_scale_options(required=False)
@_json_option
@click.pass_context
def update_command(ctx: click.Context, target: str, as_json: bool, **fields: Any) -> None:
    """Change a deployment: the next release. --min-instances 0 --max-instances 0
    disables it (its queued and running predictions are canceled)."""
    owner, name = _split(target)
    body = {k: v for k, v in fields.items() if v is not None}
    if not body:
        raise click.UsageError(
            "nothing to change: give --version, --hardware, --min-instances or --max-instances"
        )
    with _client(ctx) as client:
        r = client.patch(f"/v1/deployments/{owner}/{name}", json=body)
        fail(r)
        _show(r.json(), as_json)


@_subcommand("delete")
@click.argument("target", metavar="OWNER/NAME")
@click.pass_context
def delete_command(ctx: click.Context, target: str) -> None:
    """Delete a disabled, idle deployment (update it to 0 instances first)."""
    owner, name = _split(target)
    with _client(ctx) as client:
        r = client.delete(f"/v1/deployments/{owner}/{name}")
        fail(r)
    click.echo(f"deleted {owner}/{name}")
