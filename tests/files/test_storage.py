from __future__ import annotations

import io
import time
from datetime import timedelta
from pathlib import Path

import pytest

from vendo.config import Settings
from vendo.errors import PayloadTooLarge, StorageError
from vendo.files.storage import FILE_ID_KEY, FileStorage
from vendo.store import Store, utcnow


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path):
    """File storage in a folder, or in a bucket of a real S3 API server (moto)."""
    store = Store.open(f"sqlite:///{tmp_path / 'db.sqlite'}")
    settings: dict[str, object] = {"data_dir": tmp_path, "max_upload_bytes": 1000}
    if request.param == "s3":
        settings["storage_url"] = request.getfixturevalue("s3_bucket")
        settings["storage_endpoint_url"] = request.getfixturevalue("s3_server")
    yield FileStorage.from_settings(Settings(**settings), store)  # type: ignore[arg-type]
    store.close()


def _content(storage: FileStorage, row) -> bytes:
    return b"".join(storage.chunks(row))


def test_upload_records_hashes_and_expiry(storage: FileStorage) -> None:
    user = storage.store.accounts.create_user("u")
    row = storage.save_upload(user.id, io.BytesIO(b"hello"), name="../x y.txt", metadata={"a": 1})
    assert row.size == 5 and row.content_type == "text/plain"
    assert row.md5 == "5d41402abc4b2a76b9719d911017c592"
    assert row.sha256.startswith("2cf24dba")
    assert row.expires_at is not None and row.expires_at > utcnow()
    assert _content(storage, row) == b"hello"
    local = storage.local_path(row)
    assert (local is None) == storage.shared
    storage.delete(row)
    assert storage.store.files.get(row.id) is None
    with pytest.raises(FileNotFoundError):
        _content(storage, row)


def test_upload_cap(storage: FileStorage) -> None:
    user = storage.store.accounts.create_user("u")
    with pytest.raises(PayloadTooLarge):
        storage.save_upload(user.id, io.BytesIO(b"x" * 1001), name="big")


def test_signatures(storage: FileStorage) -> None:
    path = storage.signed_path("fid", "alice")
    query = dict(p.split("=", 1) for p in path.split("?", 1)[1].split("&"))
    assert storage.verify("fid", "alice", query["expiry"], query["signature"])
    assert not storage.verify("fid", "bob", query["expiry"], query["signature"])
    assert not storage.verify("other", "alice", query["expiry"], query["signature"])
    expired = int(time.time()) - 1
    assert not storage.verify(
        "fid", "alice", str(expired), storage.signature("fid", "alice", expired)
    )


def test_outputs_are_moved_and_rendered(storage: FileStorage, tmp_path: Path) -> None:
    user = storage.store.accounts.create_user("u")
    out = tmp_path / "out.png"
    out.write_bytes(b"\x89PNG")
    value = storage.encode_outputs("pred", user.id, [{"__vendo_file__": str(out)}, "text"])
    assert not out.exists()
    file_id = value[0][FILE_ID_KEY]
    row = storage.store.files.get(file_id)
    assert row is not None and row.content_type == "image/png" and row.prediction_id == "pred"
    assert row.size == 4 and _content(storage, row) == b"\x89PNG"
    copy = tmp_path / "copy.png"
    storage.copy_to(row, copy)
    assert copy.read_bytes() == b"\x89PNG"
    rendered = storage.render(value, "https://h.example/", "u")
    assert rendered[0].startswith(f"https://h.example/v1/files/{file_id}/download?owner=u&")
    assert rendered[1] == "text"
    assert storage.delete_prediction_files("pred") == 1


def test_purge_expired(storage: FileStorage) -> None:
    user = storage.store.accounts.create_user("u")
    row = storage.save_upload(
        user.id, io.BytesIO(b"x"), name="a", expires_at=utcnow() - timedelta(seconds=1)
    )
    assert storage.purge_expired() == 1
    assert storage.store.files.get(row.id) is None


def test_packages_round_trip_through_the_bucket(storage: FileStorage, tmp_path: Path) -> None:
    """A pushed package goes to the bucket; another host unpacks it from there. Local
    storage keeps none (the unpacked folder is the package)."""
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "cog.yaml").write_text("predict: predict.py:P\n")
    (package / "sub" / "data.txt").write_text("weights")
    storage.save_package("d1gest", package)
    target = tmp_path / "elsewhere" / "packages" / "d1gest"
    restored = storage.restore_package("d1gest", target)
    assert restored is storage.shared
    if restored:
        assert (target / "cog.yaml").read_text() == "predict: predict.py:P\n"
        assert (target / "sub" / "data.txt").read_text() == "weights"
    assert not storage.restore_package("missing", tmp_path / "other" / "missing")


def test_a_bad_storage_url_is_one_clear_error(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'db.sqlite'}")
    try:
        with pytest.raises(StorageError, match="s3://bucket"):
            FileStorage.from_settings(
                Settings(data_dir=tmp_path, storage_url="gs://nope"),  # type: ignore[call-arg]
                store,
            )
    finally:
        store.close()


def test_an_unreachable_bucket_stops_the_start(s3_bucket: str, s3_server: str, tmp_path: Path):
    store = Store.open(f"sqlite:///{tmp_path / 'db.sqlite'}")
    settings = Settings(  # type: ignore[call-arg]
        data_dir=tmp_path, storage_url="s3://no-such-bucket-here", storage_endpoint_url=s3_server
    )
    try:
        with pytest.raises(StorageError, match="no-such-bucket-here"):
            FileStorage.from_settings(settings, store)
    finally:
        store.close()


def test_a_trained_versions_weights_come_to_this_disk_once(
    storage: FileStorage, tmp_path: Path
) -> None:
    """In a bucket, a training's weights are an ``s3://`` location no runner can read:
    a host fetches them once into its data dir before starting instances."""
    from types import SimpleNamespace

    from vendo.scheduler.spec import local_weights

    user = storage.store.accounts.create_user("u")
    trained = tmp_path / "weights.bin"
    trained.write_bytes(b"learned")
    row = storage.save_weights(user.id, trained)
    where = storage.location(row)
    version = SimpleNamespace(id="v", weights=where)
    host = tmp_path / "host"
    local_weights(version, storage, host)
    if storage.shared:
        assert where.startswith("s3://")
        assert Path(version.weights).is_relative_to(host.resolve())
    else:
        assert version.weights == where  # already on this disk: used where it is
    assert Path(version.weights).read_bytes() == b"learned"
    again = SimpleNamespace(id="v", weights=where)
    local_weights(again, storage, host)
    assert again.weights == version.weights  # fetched once, reused
