"""The child's folder for file outputs that have no path on disk (``io.BytesIO``...).

The folder is created on first use, so most children never make one, and removed when
the child exits: the parent has turned every file of a finished prediction into a URL or
a stored file by the time it lets the child go. A child that is killed (cancel grace,
hung healthcheck) cannot remove it.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from typing import Optional

__all__ = ["OutputFolder"]


class OutputFolder:
    """Call it for the folder's path; ``remove()`` deletes the folder and what is in it."""

    def __init__(self) -> None:
        self._path: Optional[str] = None
        self._lock = threading.Lock()

    def __call__(self) -> str:
        with self._lock:
            if self._path is None:
                self._path = tempfile.mkdtemp(prefix="vendo-output-")
            return self._path

    def remove(self) -> None:
        with self._lock:
            path, self._path = self._path, None
        if path is not None:
            shutil.rmtree(path, ignore_errors=True)
