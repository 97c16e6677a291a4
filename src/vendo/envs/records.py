"""Build records: what a project was built into, and its OpenAPI schema.

``<data dir>/builds/<id>/`` holds ``record.json``, ``openapi.json`` and ``build.log``
for one (environment key, project content hash) pair, so an unchanged project reuses
its schema without starting Python, and ``vendo envs`` can tell which projects use
which environment.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vendo.envs.builder import BuildResult

__all__ = ["BuildRecord", "RecordStore", "environment_record", "write_json_atomic"]


@dataclass
class BuildRecord:
    project_dir: str
    env_key: str
    project_hash: str
    built_at: float
    openapi_file: str | None = None
    warnings: list[str] = field(default_factory=list)


def write_json_atomic(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
            handle.write("\n")
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


class RecordStore:
    def __init__(self, data_dir: Path) -> None:
        self.root = Path(data_dir).resolve() / "builds"

    def dir_for(self, env_key: str, project_hash: str) -> Path:
        digest = hashlib.sha256(f"{env_key}:{project_hash}".encode()).hexdigest()
        return self.root / digest[:24]

    def load(self, folder: Path) -> BuildRecord | None:
        try:
            data = json.loads((folder / "record.json").read_text(encoding="utf-8"))
            return BuildRecord(**data)
        except (OSError, ValueError, TypeError):
            return None

    def save(self, folder: Path, record: BuildRecord) -> None:
        write_json_atomic(folder / "record.json", asdict(record))

    def all(self) -> list[tuple[Path, BuildRecord]]:
        if not self.root.is_dir():
            return []
        found = []
        for folder in sorted(self.root.iterdir()):
            record = self.load(folder)
            if record is not None:
                found.append((folder, record))
        return found

    def latest_by_project(self) -> dict[str, BuildRecord]:
        latest: dict[str, BuildRecord] = {}
        for _folder, record in self.all():
            known = latest.get(record.project_dir)
            if known is None or record.built_at > known.built_at:
                latest[record.project_dir] = record
        return latest

    def projects_by_env(self) -> dict[str, list[str]]:
        """Environment key -> projects (still on disk) whose latest build uses it."""
        users: dict[str, list[str]] = {}
        for project, record in self.latest_by_project().items():
            if Path(project).is_dir():
                users.setdefault(record.env_key, []).append(project)
        return users

    def remove_for_env(self, env_key: str) -> None:
        for folder, record in self.all():
            if record.env_key == env_key:
                shutil.rmtree(folder, ignore_errors=True)


def environment_record(result: BuildResult) -> dict[str, Any]:
    """What a version keeps of its build (``VersionRow.environment``): how to start its
    runner on the host that built it."""
    return {
        "python": str(result.python),
        "runtime_path": str(result.runtime_path),
        "env": dict(result.env),
        "env_dir": str(result.env_dir),
        "env_key": result.env_key,
        "reused": bool(result.reused),
        "seconds": float(result.seconds),
        "warnings": list(result.warnings),
    }
