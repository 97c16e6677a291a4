"""Unknown inputs (issue 16) on Cog's HTTP API (``vendo serve-model``) and in ``vendo
predict``: ignored as on Cog, and the prediction's logs start with a warning naming
each and the closest known input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent.parent / "fixtures"


def warning(name: str, known: str | None = None) -> str:
    line = f'warning: input "{name}" is not an input of this model and was ignored'
    return line + (f' (did you mean "{known}"?)' if known else "")


async def test_serve_model_logs_the_ignored_inputs(serve: Any) -> None:
    served = await serve("srv_echo")
    r = await served.client.post(
        "/predictions", json={"input": {"txt": "x", "cont": 2, "text": "ab", "qqqqqq": 1}}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "succeeded" and body["output"] == "ab"
    lines = body["logs"].splitlines()
    assert lines[:3] == [warning("cont", "count"), warning("qqqqqq"), warning("txt", "text")]
    assert "echo call" in lines[3]
    assert body["input"] == {"text": "ab"}  # echoed as validated: known inputs only


def test_vendo_predict_prints_the_warning(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "vendo", "predict", str(FIXTURES / "plt_echo"), "--no-build",
         "-i", "txt=hello"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hi\n"
    assert warning("txt", "text") in result.stderr.splitlines(), result.stderr
