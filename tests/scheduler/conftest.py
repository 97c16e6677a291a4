from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from vendo.runner.dist import install_runtime
from vendo.scheduler.process import RunnerProcess, RunnerSpec

FIXTURES = Path(__file__).parent.parent / "fixtures"


@pytest.fixture(scope="session")
def runtime_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_runtime(tmp_path_factory.mktemp("runtime"))


@pytest.fixture
async def make_runner(runtime_path: Path) -> AsyncIterator[Callable[..., Any]]:
    runners: list[RunnerProcess] = []

    async def make(
        fixture: str,
        ref: str = "predict.py:Predictor",
        env: dict[str, str] | None = None,
        **kw: Any,
    ) -> RunnerProcess:
        spec = RunnerSpec(
            project=FIXTURES / fixture,
            ref=ref,
            python=kw.pop("python", sys.executable),
            runtime_path=runtime_path,
            env=env or {},
            mode=kw.pop("mode", "predict"),
            max_concurrency=kw.pop("max_concurrency", None),
        )
        runner = RunnerProcess(spec, **kw)
        runners.append(runner)
        await runner.start()
        return runner

    yield make
    for runner in runners:
        await runner.close(timeout=2.0)
