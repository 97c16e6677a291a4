"""The build progress display shared by ``vendo build``, ``serve-model`` and ``predict``.

Everything goes to the given console (stderr), so stdout stays free for what the
command prints: the schema path, or a prediction's output.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.markup import escape
from rich.status import Status

if TYPE_CHECKING:
    from vendo.config import Settings
    from vendo.envs import BuildResult

__all__ = ["build_with_progress", "load_settings", "stderr_console"]


def stderr_console() -> Console:
    # soft_wrap: long paths stay on one line when stderr is a file or a pipe
    return Console(stderr=True, highlight=False, soft_wrap=True)


def load_settings(data_dir: Path | None = None) -> Settings:
    """Vendo's settings (VENDO_* variables), with ``--data-dir`` over VENDO_DATA_DIR."""
    from vendo.config import Settings

    if data_dir is None:
        return Settings()  # type: ignore[call-arg]  # every field has a default
    return Settings(data_dir=data_dir)  # type: ignore[call-arg]


def build_with_progress(
    project_dir: Path,
    settings: Settings,
    console: Console,
    *,
    verbose: bool = False,
) -> BuildResult:
    """Build (or reuse) the project's environment, showing steps and warnings.

    On failure the end of the build log and the log's path are shown and a
    ClickException naming the problem is raised (exit status 1).
    """
    from vendo.envs import build_project
    from vendo.errors import BuildError, VendoError

    started = time.monotonic()
    status = Status("Reading cog.yaml", console=console)

    def on_step(text: str) -> None:
        elapsed = time.monotonic() - started
        status.update(f"{escape(text)} [dim]({elapsed:.1f} s)[/]")

    shown: set[str] = set()

    def warn(text: str) -> None:
        if text not in shown:
            shown.add(text)
            console.print(f"[yellow]warning:[/] {escape(text)}")

    def on_log(line: str) -> None:
        # Warnings show as they come, so a failed build still shows them.
        if line.startswith("warning: "):
            warn(line.removeprefix("warning: "))
        elif verbose:
            console.print(f"[dim]{escape(line)}[/]")

    try:
        with status:
            result = build_project(project_dir, settings, on_log=on_log, on_step=on_step)
    except BuildError as exc:
        if exc.log_tail and not verbose:
            console.rule("[red]build log (last lines)")
            console.print(escape(exc.log_tail))
            console.rule()
        log_path = getattr(exc, "log_path", None)
        if log_path is not None:
            console.print(f"Build log: {log_path}")
        raise click.ClickException(f"build failed: {exc.detail}") from exc
    except VendoError as exc:
        raise click.ClickException(exc.detail) from exc

    for warning in result.warnings:
        warn(warning)
    how = "reused" if result.reused else "built"
    console.print(
        f"[green]Environment {how}[/] in {result.seconds:.2f} s: {result.env_dir} "
        f"[dim](key {result.env_key})[/]"
    )
    return result
