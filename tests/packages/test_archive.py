from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from vendo.packages import (
    PackageError,
    archive_bytes,
    content_hash,
    iter_project_files,
    safe_extract,
)


def _project(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "cog.yaml").write_text("predict: predict.py:Predictor\n")
    (root / "predict.py").write_text("print('hi')\n")
    (root / "sub" / "data.txt").write_text("data\n")
    (root / "run.sh").write_text("#!/bin/sh\n")
    (root / "run.sh").chmod(0o755)
    for skipped in (".git", ".venv", "sub/__pycache__"):
        (root / skipped).mkdir(parents=True)
        (root / skipped / "junk").write_text("x")
    return root


def _tar(*members: tuple[tarfile.TarInfo, bytes | None]) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    buf.seek(0)
    return buf


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info


def test_pack_skips_vcs_envs_and_caches(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    names = [pf.relpath for pf in iter_project_files(root)]
    assert names == ["cog.yaml", "predict.py", "run.sh", "sub/data.txt"]


def test_dockerignore_and_cogignore_with_negation(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    (root / "weights").mkdir()
    (root / "weights" / "big.bin").write_text("x")
    (root / "weights" / "keep.json").write_text("{}")
    (root / "notes.md").write_text("x")
    (root / ".dockerignore").write_text("# comment\n/weights\n!weights/keep.json\n")
    (root / ".cogignore").write_text("**/*.md\n")
    names = [pf.relpath for pf in iter_project_files(root)]
    assert "weights/big.bin" not in names
    assert "weights/keep.json" in names
    assert "notes.md" not in names
    assert ".dockerignore" in names


def test_roundtrip_keeps_modes_and_hash_is_stable(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    first = archive_bytes(root)
    os.utime(root / "predict.py", (1, 1))
    assert archive_bytes(root) == first  # deterministic: times are not part of it

    a, b = tmp_path / "a", tmp_path / "b"
    files = safe_extract(io.BytesIO(first), a)
    assert files == ["cog.yaml", "predict.py", "run.sh", "sub/data.txt"]
    assert os.access(a / "run.sh", os.X_OK)
    assert not os.access(a / "predict.py", os.X_OK)
    safe_extract(io.BytesIO(first), b)
    assert content_hash(a) == content_hash(b)
    assert len(content_hash(a)) == 64

    (root / "predict.py").write_text("print('changed')\n")
    c = tmp_path / "c"
    safe_extract(io.BytesIO(archive_bytes(root)), c)
    assert content_hash(c) != content_hash(a)


def test_links_inside_are_kept_and_outside_files_are_inlined(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    outside = tmp_path / "weights.bin"
    outside.write_bytes(b"w" * 10)
    (root / "inside-link").symlink_to("sub/data.txt")
    (root / "outside-link").symlink_to(outside)
    dest = tmp_path / "out"
    safe_extract(io.BytesIO(archive_bytes(root)), dest)
    assert (dest / "inside-link").is_symlink()
    assert (dest / "inside-link").read_text() == "data\n"
    assert not (dest / "outside-link").is_symlink()
    assert (dest / "outside-link").read_bytes() == b"w" * 10


@pytest.mark.parametrize(
    ("member", "message"),
    [
        ((_member("/etc/evil"), b"x"), "absolute"),
        ((_member("../evil"), b"x"), "'..'"),
        ((_member("a/../../evil"), b"x"), "'..'"),
        ((_member("link", tarfile.SYMTYPE, "/etc/passwd"), None), "outside"),
        ((_member("a/link", tarfile.SYMTYPE, "../../x"), None), "outside"),
        ((_member("hard", tarfile.LNKTYPE, "/etc/passwd"), None), "absolute"),
        ((_member("dev", tarfile.CHRTYPE), None), "device"),
        ((_member("blk", tarfile.BLKTYPE), None), "device"),
        ((_member("fifo", tarfile.FIFOTYPE), None), "FIFO"),
    ],
)
def test_unsafe_members_are_refused(
    tmp_path: Path, member: tuple[tarfile.TarInfo, bytes | None], message: str
) -> None:
    dest = tmp_path / "out"
    with pytest.raises(PackageError, match=message):
        safe_extract(_tar((_member("ok.txt"), b"fine"), member), dest)
    # refused before anything was written
    assert list(dest.iterdir()) == []
    assert not (tmp_path / "evil").exists()


def test_link_chain_escaping_through_a_symlink_is_refused(tmp_path: Path) -> None:
    # lexically "a/a/a/../../.." stays inside, but with a -> . it resolves two levels up
    archive = _tar(
        (_member("a", tarfile.SYMTYPE, "."), None),
        (_member("b", tarfile.SYMTYPE, "a/a/a/../../.."), None),
    )
    with pytest.raises(PackageError):
        safe_extract(archive, tmp_path / "d" / "out")


def test_writing_through_a_symlink_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    archive = _tar(
        (_member("l", tarfile.SYMTYPE, "."), None),
        (_member("l/x", tarfile.REGTYPE), b"ok"),
    )
    dest = tmp_path / "out"
    safe_extract(archive, dest)  # inside the project: allowed
    assert (dest / "x").read_bytes() == b"ok"


def test_size_and_garbage_limits(tmp_path: Path) -> None:
    with pytest.raises(PackageError, match="more than 3 bytes"):
        safe_extract(_tar((_member("big"), b"1234")), tmp_path / "a", max_bytes=3)
    with pytest.raises(PackageError, match="not a tar"):
        safe_extract(io.BytesIO(b"not an archive at all"), tmp_path / "b")


def test_member_count_limit(tmp_path: Path) -> None:
    archive = _tar(*[(_member(f"f{i}"), b"") for i in range(5)])
    with pytest.raises(PackageError, match="more than 3 members"):
        safe_extract(archive, tmp_path / "out", max_members=3)
