"""Replicate checklist item 13's "≤2/s" (spec/replicate-api.md §6): the throttle that
test_outbox exercises at a short interval is 0.5 s by default, and the platform's outbox
takes it from the settings."""

from __future__ import annotations

from pathlib import Path

from vendo.config import Settings
from vendo.webhooks.outbox import Outbox


def test_cf_default_progress_throttle_is_two_per_second(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, _env_file=None)  # type: ignore[call-arg]
    assert settings.throttle_interval == 0.5
    assert Outbox.from_settings(settings, None)._interval == 0.5
    slower = Settings(data_dir=tmp_path, throttle_interval=2.0, _env_file=None)  # type: ignore[call-arg]
    assert Outbox.from_settings(slower, None)._interval == 2.0
