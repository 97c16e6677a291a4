"""The ``vendo`` command line: a thin click group.

Each command lives in its own module and is imported only when it is run, so
``vendo --help`` stays fast and a command's dependencies load only when needed.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
from pathlib import Path
from typing import Any

import click

__all__ = ["main"]

# command name -> (module under vendo.cli, attribute, one-line help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "serve": ("serve", "serve", "Run the platform (Replicate's API) on the embedded default."),
    "serve-model": ("serve_model", "serve_model", "Serve one model with Cog's HTTP API."),
    "predict": ("predict", "predict", "Run one prediction locally and print the output."),
    "build": ("build", "build", "Build (or reuse) a model's environment."),
    "envs": ("envs", "envs", "List or remove built model environments."),
    "push": ("push", "push", "Upload a model to a server as a new version."),
    "run": ("run", "run", "Run a prediction through a server's API."),
    "train": ("train", "train", "Train a model through a server's API into a new version."),
    "deployments": ("deployments", "deployments", "Create, list, update or delete deployments."),
    "agent": ("agent", "agent", "Scaled mode: run models for the shared queue."),
    "migrate": ("migrate", "migrate", "Upgrade the database schema and exit."),
    "users": ("accounts", "users", "Add and list the people who may use this server."),
    "tokens": ("accounts", "tokens", "Create, list and revoke API tokens."),
    "orgs": ("accounts", "orgs", "Create organizations and add members."),
    "usage": ("usage", "usage", "Show an account's billed usage and cost, from a server."),
    "credit": ("credit", "credit", "Set or show an account's credit (admin, on the database)."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in COMMANDS if self._available(name)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module_name, attr, _ = COMMANDS[cmd_name]
        try:
            module = importlib.import_module(f"vendo.cli.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"vendo.cli.{module_name}":
                return None
            raise
        command: click.Command = getattr(module, attr)
        return command

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else ""
        if name and not name.startswith("-") and self.get_command(ctx, name) is None:
            close = difflib.get_close_matches(name, self.list_commands(ctx), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            ctx.fail(f"No such command '{name}'.{hint} (vendo --help lists them)")
        return super().resolve_command(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        # expected failures of the environment, one line each instead of a traceback
        from pydantic import ValidationError

        try:
            return super().invoke(ctx)
        except ValidationError as exc:
            if exc.title != "Settings":
                raise
            raise click.ClickException(_settings_problem(exc)) from None
        except OSError as exc:
            if exc.filename is None or isinstance(exc, click.ClickException):
                raise
            raise click.ClickException(_path_problem(exc, ctx.meta)) from None

    @staticmethod
    def _available(name: str) -> bool:
        module_name = COMMANDS[name][0]
        return importlib.util.find_spec(f"vendo.cli.{module_name}") is not None


def _settings_problem(exc: Any) -> str:
    problems = []
    for error in exc.errors():
        variable = "VENDO_" + "_".join(str(part) for part in error["loc"]).upper()
        problems.append(f"{variable}={error.get('input')!r}: {error['msg']}")
    return "bad setting: " + "; ".join(problems) + " (see docs/settings.md)"


def _path_problem(exc: OSError, meta: dict[str, Any]) -> str:
    line = f"cannot use {exc.filename}: {exc.strerror or exc}"
    try:
        from vendo.config import Settings

        given = meta.get("vendo.data_dir")  # --data-dir (vendo.cli.options)
        data_dir = Settings(**({"data_dir": given} if given else {})).data_dir
    except Exception:  # a bad setting: the line above says enough
        return line
    path = Path(str(exc.filename)).absolute()
    if path == data_dir or data_dir in path.parents or path in data_dir.parents:
        return (
            f"{line}: the data dir must be a folder you can write to (--data-dir, VENDO_DATA_DIR)"
        )
    return line


@click.group(cls=LazyGroup)
@click.version_option(package_name="vendo")
def cli() -> None:
    """Vendo: run Cog models behind Replicate's API, on your own machine."""


def main(argv: list[str] | None = None) -> Any:
    return cli.main(args=argv, prog_name="vendo")
