"""Secret inputs sealed with a key that lives outside the database."""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from vendo.config import Settings
from vendo.errors import SecretsKeyError
from vendo.store.sealing import KEY_FILE, SEALED, SecretBox, is_sealed


def _settings(data_dir: Path, key: str | None = None) -> Settings:
    return Settings(data_dir=data_dir, secrets_key=key, _env_file=None)  # type: ignore[arg-type]


@pytest.fixture
def open_umask() -> Iterator[None]:
    # the most permissive umask: the key file must be private regardless
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def test_seal_and_open(tmp_path: Path) -> None:
    box = SecretBox.from_settings(_settings(tmp_path))
    run = {"text": "hi", "token": "sk-123", "other": None, "keys": ["a1", "b2"]}
    sealed = box.seal(run, ["token", "other", "keys"])
    assert is_sealed(sealed) and set(sealed) == {"text", "other", SEALED}
    # quoted: the ciphertext (base64, no quotes) may hold "a1" by chance, never "'a1'"
    assert "'sk-123'" not in repr(sealed) and "'a1'" not in repr(sealed)
    assert box.open(sealed) == run
    # nothing secret to seal: unchanged, and opening a plain input is a no-op
    assert box.seal({"text": "hi"}, ["token"]) == {"text": "hi"}
    assert box.open({"text": "hi"}) == {"text": "hi"} and box.open(None) == {}


def test_key_file_is_private_from_the_start(tmp_path: Path, open_umask: None) -> None:
    SecretBox.from_settings(_settings(tmp_path / "data"))
    key_file = tmp_path / "data" / KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    Fernet(key_file.read_bytes().strip())
    assert [p.name for p in key_file.parent.iterdir()] == [KEY_FILE]  # no temporary left


def test_processes_racing_to_make_the_key_agree(tmp_path: Path) -> None:
    boxes: list[SecretBox] = []
    start = threading.Barrier(8)

    def make() -> None:
        start.wait()
        boxes.append(SecretBox.from_settings(_settings(tmp_path)))

    threads = [threading.Thread(target=make) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sealed = boxes[0].seal({"token": "x"}, ["token"])
    assert all(box.open(sealed) == {"token": "x"} for box in boxes)


def test_a_key_file_others_may_read_is_refused(tmp_path: Path) -> None:
    SecretBox.from_settings(_settings(tmp_path))
    os.chmod(tmp_path / KEY_FILE, 0o644)
    with pytest.raises(SecretsKeyError, match="chmod 600"):
        SecretBox.from_settings(_settings(tmp_path))


def test_the_setting_supplies_the_key_and_rotates_it(tmp_path: Path) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    sealed = SecretBox.from_settings(_settings(tmp_path, old)).seal({"t": "v"}, ["t"])
    assert not (tmp_path / KEY_FILE).exists()  # the setting wins: no file made
    rotated = SecretBox.from_settings(_settings(tmp_path, f"{new},{old}"))
    assert rotated.open(sealed) == {"t": "v"}
    with pytest.raises(SecretsKeyError, match="cannot be decrypted.*VENDO_SECRETS_KEY"):
        SecretBox.from_settings(_settings(tmp_path, new)).open(sealed)
    with pytest.raises(SecretsKeyError, match="not a valid secrets key"):
        SecretBox.from_settings(_settings(tmp_path, "not-a-key"))
    # the setting is never shown by the settings' repr
    assert old not in repr(_settings(tmp_path, old))
