"""``vendo envs``: list, remove and prune built model environments."""

from __future__ import annotations

import time
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from vendo.cli.options import data_dir_option

__all__ = ["envs"]


def _data_dir(data_dir: Path | None) -> Path:
    if data_dir is not None:
        return data_dir
    from vendo.config import Settings

    return Path(Settings().data_dir)  # type: ignore[call-arg]


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def _ago(then: float) -> str:
    seconds = max(0.0, time.time() - then)
    for unit, length in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= length:
            return f"{seconds / length:.0f} {unit} ago"
    return "just now"


@click.group(invoke_without_command=True)
@data_dir_option
@click.pass_context
def envs(ctx: click.Context, data_dir: Path | None) -> None:
    """List built model environments (size, last use, projects using them)."""
    ctx.ensure_object(dict)
    ctx.obj["data_dir"] = data_dir
    if ctx.invoked_subcommand is not None:
        return
    from vendo.envs.records import RecordStore
    from vendo.envs.store import EnvStore

    root = _data_dir(data_dir)
    found = EnvStore(root).all()
    users = RecordStore(root).projects_by_env()
    if not found:
        click.echo(f"No environments in {root / 'envs'}")
        return
    table = Table("key", "python", "size", "last used", "projects", box=None)
    for env in sorted(found, key=lambda e: e.last_used, reverse=True):
        projects = users.get(env.key, [])
        table.add_row(
            env.key,
            env.python,
            _size(env.size()),
            _ago(env.last_used),
            "\n".join(projects) if projects else "(unused)",
        )
    Console(highlight=False, width=200).print(table)


def _match(keys: list[str], prefix: str) -> str:
    hits = [k for k in keys if k.startswith(prefix)]
    if not hits:
        raise click.ClickException(f"no environment with key {prefix}")
    if len(hits) > 1:
        raise click.ClickException(f"{prefix} matches {len(hits)} environments; give more")
    return hits[0]


@envs.command("rm")
@click.argument("keys", nargs=-1, required=True)
@data_dir_option
@click.pass_context
def rm(ctx: click.Context, keys: tuple[str, ...], data_dir: Path | None) -> None:
    """Remove environments by key (a unique prefix is enough)."""
    from vendo.envs.records import RecordStore
    from vendo.envs.store import EnvStore

    root = _data_dir(data_dir or ctx.obj.get("data_dir"))
    store = EnvStore(root)
    known = [env.key for env in store.all()]
    for prefix in keys:
        key = _match(known, prefix)
        store.remove(key)
        RecordStore(root).remove_for_env(key)
        click.echo(f"removed {key}")


@envs.command("prune")
@click.option(
    "--older-than",
    type=float,
    default=None,
    help="Also remove environments in use whose last use is more than this many days ago.",
)
@click.option("--dry-run", is_flag=True, help="Only say what would be removed.")
@data_dir_option
@click.pass_context
def prune(
    ctx: click.Context, older_than: float | None, dry_run: bool, data_dir: Path | None
) -> None:
    """Remove environments no project uses any more, and interrupted builds."""
    from vendo.envs.records import RecordStore
    from vendo.envs.store import EnvStore

    root = _data_dir(data_dir or ctx.obj.get("data_dir"))
    store = EnvStore(root)
    records = RecordStore(root)
    users = records.projects_by_env()
    cutoff = None if older_than is None else time.time() - older_than * 86400
    freed = 0
    removed = 0
    for env in store.all():
        stale = cutoff is not None and env.last_used < cutoff
        if env.key in users and not stale:
            continue
        freed += env.size()
        removed += 1
        if dry_run:
            click.echo(f"would remove {env.key}")
            continue
        store.remove(env.key)
        records.remove_for_env(env.key)
        click.echo(f"removed {env.key}")
    leftovers = len(store.leftovers()) if dry_run else store.clean_leftovers()
    verb = "would free" if dry_run else "freed"
    click.echo(f"{removed} environment(s), {leftovers} leftover build(s); {verb} {_size(freed)}")
