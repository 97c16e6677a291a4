from __future__ import annotations

import io
import time
from datetime import timedelta
from pathlib import Path

import pytest

from vendo.errors import PayloadTooLarge
from vendo.files.storage import FILE_ID_KEY, LocalStorage
from vendo.store import Store, utcnow


@pytest.fixture
def storage(tmp_path: Path):
    store = Store.open(f"sqlite:///{tmp_path / 'db.sqlite'}")
    yield LocalStorage(tmp_path / "files", store, max_upload_bytes=1000)
    store.close()


def test_upload_records_hashes_and_expiry(storage: LocalStorage) -> None:
    user = storage.store.accounts.create_user("u")
    row = storage.save_upload(user.id, io.BytesIO(b"hello"), name="../x y.txt", metadata={"a": 1})
    assert row.size == 5 and row.content_type == "text/plain"
    assert row.md5 == "5d41402abc4b2a76b9719d911017c592"
    assert row.sha256.startswith("2cf24dba")
    assert row.expires_at is not None and row.expires_at > utcnow()
    assert storage.path(row).read_bytes() == b"hello"
    assert storage.path(row).is_relative_to(storage.root)
    storage.delete(row)
    assert storage.store.files.get(row.id) is None and not storage.path(row).exists()


def test_upload_cap(storage: LocalStorage) -> None:
    user = storage.store.accounts.create_user("u")
    with pytest.raises(PayloadTooLarge):
        storage.save_upload(user.id, io.BytesIO(b"x" * 1001), name="big")


def test_signatures(storage: LocalStorage) -> None:
    path = storage.signed_path("fid", "alice")
    query = dict(p.split("=", 1) for p in path.split("?", 1)[1].split("&"))
    assert storage.verify("fid", "alice", query["expiry"], query["signature"])
    assert not storage.verify("fid", "bob", query["expiry"], query["signature"])
    assert not storage.verify("other", "alice", query["expiry"], query["signature"])
    expired = int(time.time()) - 1
    assert not storage.verify(
        "fid", "alice", str(expired), storage.signature("fid", "alice", expired)
    )


def test_outputs_are_moved_and_rendered(storage: LocalStorage, tmp_path: Path) -> None:
    user = storage.store.accounts.create_user("u")
    out = tmp_path / "out.png"
    out.write_bytes(b"\x89PNG")
    value = storage.encode_outputs("pred", user.id, [{"__vendo_file__": str(out)}, "text"])
    assert not out.exists()
    file_id = value[0][FILE_ID_KEY]
    row = storage.store.files.get(file_id)
    assert row is not None and row.content_type == "image/png" and row.prediction_id == "pred"
    rendered = storage.render(value, "https://h.example/", "u")
    assert rendered[0].startswith(f"https://h.example/v1/files/{file_id}/download?owner=u&")
    assert rendered[1] == "text"
    assert storage.delete_prediction_files("pred") == 1


def test_purge_expired(storage: LocalStorage) -> None:
    user = storage.store.accounts.create_user("u")
    row = storage.save_upload(
        user.id, io.BytesIO(b"x"), name="a", expires_at=utcnow() - timedelta(seconds=1)
    )
    assert storage.purge_expired() == 1
    assert storage.store.files.get(row.id) is None
