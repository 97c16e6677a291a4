"""The Cog-compatible SDK: what a model's ``predict.py`` imports as ``cog``.

    from cog import BasePredictor, Input, Path

    class Predictor(BasePredictor):
        def setup(self) -> None:
            self.prefix = "hello "

        def predict(self, name: str = Input(description="Who to greet")) -> str:
            return self.prefix + name

Stdlib only: this package is copied into model environments, where Vendo's own
dependencies are not installed. The runner registers it under the name ``cog``.
"""

from __future__ import annotations

import sys
from typing import Any

from vendo import __version__ as _vendo_version

from .coder import Coder
from .exceptions import CancelationException
from .input import FieldInfo, Input
from .model import BaseModel
from .predictor import BasePredictor, BaseRunner, concurrent, streaming
from .scope import current_scope
from .types import (
    AsyncConcatenateIterator,
    ConcatenateIterator,
    ExperimentalFeatureWarning,
    File,
    Opaque,
    Path,
    Secret,
    URLFile,
    URLPath,
)

__all__ = [
    "__version__",
    # the model
    "BasePredictor",
    "BaseRunner",
    "concurrent",
    "streaming",
    # inputs
    "FieldInfo",
    "Input",
    # types
    "AsyncConcatenateIterator",
    "BaseModel",
    "ConcatenateIterator",
    "File",
    "Opaque",
    "Path",
    "Secret",
    "URLFile",
    "URLPath",
    # the running prediction
    "CancelationException",
    "current_scope",
    # custom types
    "Coder",
    # kept for older models
    "ExperimentalFeatureWarning",
    "emit_metric",
]

# The Cog release this SDK follows, with Vendo's version as a PEP 440 local label: code
# that compares ``cog.__version__`` against Cog releases sees 0.23.1, and the label tells
# a reader that Vendo's SDK is the one loaded. Keep it in step with the Cog API version
# that ``vendo serve-model`` reports.
_COG_RELEASE = "0.23.1"
__version__ = f"{_COG_RELEASE}+vendo.{_vendo_version}"

_warned = False


def emit_metric(name: str, value: Any) -> None:
    """Deprecated: use ``current_scope().record_metric(name, value)``."""
    global _warned
    if not _warned:
        _warned = True
        print(
            "cog.emit_metric is deprecated; use current_scope().record_metric instead",
            file=sys.stderr,
        )
    current_scope().record_metric(name, value)
