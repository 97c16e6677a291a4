from __future__ import annotations

from pathlib import Path

import pytest

from vendo.config import Settings, settings_markdown

DOC = Path(__file__).resolve().parents[2] / "docs" / "settings.md"


def test_every_setting_has_help_text() -> None:
    missing = [name for name, f in Settings.model_fields.items() if not f.description]
    assert missing == []


def test_settings_doc_is_current() -> None:
    # docs/settings.md is generated: `python -m vendo.config > docs/settings.md`
    expected = "# Settings\n\n" + settings_markdown()
    assert DOC.read_text() == expected


def test_environment_overrides_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VENDO_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("VENDO_IDLE_TIMEOUT", "2.5")
    settings = Settings()
    assert settings.data_dir == tmp_path / "d"
    assert settings.idle_timeout == 2.5


def test_bad_value_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VENDO_PORT", "not-a-port")
    with pytest.raises(ValueError, match="port"):
        Settings()
