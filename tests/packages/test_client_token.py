"""Where ``vendo push``/``vendo run`` find their token."""

from __future__ import annotations

from pathlib import Path

import pytest

from vendo.cli.remote import resolve_token


def test_token_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VENDO_API_TOKEN", raising=False)
    monkeypatch.delenv("REPLICATE_API_TOKEN", raising=False)
    assert resolve_token(None, tmp_path) is None
    (tmp_path / "api_token").write_text("from-file\n")
    assert resolve_token(None, tmp_path) == "from-file"  # the server's data dir
    monkeypatch.setenv("REPLICATE_API_TOKEN", "replicate")
    assert resolve_token(None, tmp_path) == "replicate"
    monkeypatch.setenv("VENDO_API_TOKEN", "vendo")
    assert resolve_token(None, tmp_path) == "vendo"
    assert resolve_token("explicit", tmp_path) == "explicit"
