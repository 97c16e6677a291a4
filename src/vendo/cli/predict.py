"""``vendo predict [DIR] -i name=value ...``: one prediction, locally, no HTTP.

Builds (or reuses) the model's environment like ``vendo build``, starts the model's
runner child in it (``--no-build``: on this interpreter), waits for setup, runs one
prediction and prints the output: strings as they are, anything else as JSON. Output
files are copied into the working directory (or ``-o DIR``) and their paths are printed
in their place. Build progress and the model's logs go to stderr as they happen. A
failed build, setup or prediction exits 1 with the error; invalid input exits 2.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from vendo.cli.inputs import parse_inputs
from vendo.cli.options import data_dir_option, no_build_option

if TYPE_CHECKING:
    from vendo.scheduler.process import RunnerSpec

__all__ = ["predict"]


def _local_file(raw: str) -> str:
    path = Path(raw).expanduser()
    if not path.is_file():
        raise click.UsageError(f"input file {raw} does not exist")
    return str(path.resolve())


class _Outputs:
    """Copies output files into the output folder and names them by path."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.written: list[Path] = []

    def place(self, value: Any) -> Any:
        from vendo.runner.protocol import FILE_KEY

        if isinstance(value, dict):
            if FILE_KEY in value and len(value) == 1:
                return str(self._copy(Path(value[FILE_KEY])))
            return {k: self.place(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.place(v) for v in value]
        return value

    def _copy(self, source: Path) -> Path:
        from vendo.cli.outputs import output_target

        target = output_target(self.folder, source.name, self.written)
        shutil.copyfile(source, target)
        self.written.append(target)
        return target


def _runner_spec(directory: Path, no_build: bool, data_dir: Path | None, work: Path) -> RunnerSpec:
    """How to start the model: in its built environment (built now if needed), or with
    ``--no-build`` on this interpreter with a fresh copy of the runtime."""
    from vendo.cli.progress import build_with_progress, load_settings, stderr_console
    from vendo.envs import child_environment
    from vendo.envs.config import load_config
    from vendo.runner.dist import install_runtime
    from vendo.scheduler.process import RunnerSpec

    if no_build:
        config = load_config(directory)
        python = sys.executable
        runtime = install_runtime(work / "runtime")
        env = dict(config.environment)
    else:
        result = build_with_progress(directory, load_settings(data_dir), stderr_console())
        config = result.config
        python = str(result.python)
        runtime = result.runtime_path
        # the env's variables, its bin first on PATH, and cog.yaml's environment
        env = child_environment(result)
    if config.predict is None:
        raise click.ClickException("cog.yaml has no run (or predict) reference")
    return RunnerSpec(
        project=config.project_dir,
        ref=config.predict,
        python=python,
        runtime_path=runtime,
        max_concurrency=None,
        env=env,
    )


async def _run(
    spec: RunnerSpec,
    pairs: tuple[str, ...],
    json_input: str | None,
    output_dir: Path,
    work: Path,
) -> int:
    from vendo.scheduler.process import RunnerProcess, RunnerState

    def runner_log(source: str, data: str) -> None:
        sys.stderr.write(data)

    runner = RunnerProcess(spec, max_restarts=0, on_runner_log=runner_log)
    await runner.start()
    try:
        state = await runner.wait_ready()
        if state is not RunnerState.READY:
            click.echo(f"Error: setup failed: {runner.setup_error or state.value}", err=True)
            return 1
        document = runner.openapi or {}
        components = document.get("components", {}).get("schemas", {})
        schema = components.get("Input", {"properties": {}})
        validated = _validated(pairs, json_input, schema, components)
        if validated is None:
            return 2
        await _fetch_urls(validated, schema, work / "inputs")
        outputs: list[Any] = []
        output_schema = components.get("Output", {})
        # a token stream is printed as it comes, like a chat reply
        concatenate = output_schema.get("x-cog-array-display") == "concatenate"

        def on_event(message: dict[str, Any]) -> None:
            if message["type"] == "log":
                sys.stderr.write(message.get("data", ""))
            elif message["type"] == "output":
                outputs.append(message.get("value"))
                if concatenate:
                    sys.stdout.write(str(message.get("value")))
                    sys.stdout.flush()

        slot = runner.acquire_slot()
        assert slot is not None
        done = await runner.predict(slot, "local", validated, on_event=on_event)
        result = outputs if output_schema.get("x-cog-array-type") == "iterator" else done["output"]
        return _report(done, outputs, _Outputs(output_dir).place(result), concatenate)
    finally:
        await runner.close()


def _validated(
    pairs: tuple[str, ...],
    json_input: str | None,
    schema: dict[str, Any],
    components: dict[str, Any],
) -> dict[str, Any] | None:
    """The inputs checked against the model's schema; None once each error is printed."""
    from vendo.schema import InputValidationError, validate_input

    payload = parse_inputs(pairs, json_input, schema.get("properties", {}), _local_file)
    try:
        valid = validate_input(schema, payload, components)
    except InputValidationError as exc:
        for error in exc.errors:
            click.echo(f"Error: input {error['loc'][-1]}: {error['msg']}", err=True)
        return None
    return {**valid, **dict.fromkeys(valid.unknown)}  # the runner warns of these


async def _fetch_urls(validated: dict[str, Any], schema: dict[str, Any], folder: Path) -> None:
    """Downloads URL inputs into ``folder`` and puts the local paths in their place."""
    from vendo.files.fetch import fetch_input, is_fetchable

    for name, value in list(validated.items()):
        prop = schema["properties"].get(name, {})
        if prop.get("format") == "uri" and is_fetchable(value):
            validated[name] = str(await fetch_input(value, folder))
        elif prop.get("items", {}).get("format") == "uri" and isinstance(value, list):
            validated[name] = [
                str(await fetch_input(v, folder)) if is_fetchable(v) else v for v in value
            ]


def _report(done: dict[str, Any], outputs: list[Any], placed: Any, concatenate: bool) -> int:
    """Prints the output (or what came before a failure) and returns the exit code."""
    if done["status"] != "succeeded":
        if concatenate and outputs:
            click.echo()
        elif outputs:
            click.echo(json.dumps(placed, indent=2))
        click.echo(f"Error: prediction {done['status']}: {done.get('error')}", err=True)
        return 1
    if concatenate:
        click.echo()  # the chunks are out already
    elif isinstance(placed, str):
        click.echo(placed)
    else:
        click.echo(json.dumps(placed, indent=2, ensure_ascii=False))
    return 0


@click.command("predict")
@click.argument(
    "directory", default=".", type=click.Path(exists=True, file_okay=False, path_type=Path)
)
@click.option(
    "-i",
    "--input",
    "inputs",
    multiple=True,
    metavar="NAME=VALUE",
    help="An input; NAME=@path for a local file. Repeat for lists.",
)
@click.option("--json", "json_input", default=None, help="All inputs as one JSON object.")
@click.option(
    "-o",
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for output files (default: the working directory).",
)
@data_dir_option
@no_build_option
def predict(
    directory: Path,
    inputs: tuple[str, ...],
    json_input: str | None,
    output_dir: Path | None,
    data_dir: Path | None,
    no_build: bool,
) -> None:
    """Run one prediction with the model in DIR and print its output.

    The model runs in the environment `vendo build` makes (built now if needed)."""
    from vendo.errors import VendoError

    work = Path(tempfile.mkdtemp(prefix="vendo-predict-"))
    try:
        spec = _runner_spec(directory, no_build, data_dir, work)
        code = asyncio.run(_run(spec, inputs, json_input, output_dir or Path.cwd(), work))
    except VendoError as exc:
        raise click.ClickException(exc.detail) from exc
    finally:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(code)
