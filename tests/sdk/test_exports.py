"""The SDK's public surface is exactly what ``__all__`` says (spec/cog.md §2)."""

from __future__ import annotations

from packaging.specifiers import SpecifierSet
from packaging.version import Version

import vendo.sdk
import vendo.sdk.coder
import vendo.sdk.exceptions
import vendo.sdk.input
import vendo.sdk.model
import vendo.sdk.predictor
import vendo.sdk.types

EXPECTED = {
    "__version__",
    "AsyncConcatenateIterator",
    "BaseModel",
    "BasePredictor",
    "BaseRunner",
    "CancelationException",
    "Coder",
    "ConcatenateIterator",
    "ExperimentalFeatureWarning",
    "FieldInfo",
    "File",
    "Input",
    "Opaque",
    "Path",
    "Secret",
    "URLFile",
    "URLPath",
    "concurrent",
    "current_scope",
    "emit_metric",
    "streaming",
}


def test_all_is_exact() -> None:
    assert set(vendo.sdk.__all__) == EXPECTED
    assert len(vendo.sdk.__all__) == len(EXPECTED)
    public = {
        name
        for name, value in vars(vendo.sdk).items()
        if not name.startswith("_") and getattr(value, "__module__", "").startswith("vendo.sdk")
    }
    assert public == EXPECTED - {"__version__"}


def test_every_name_resolves() -> None:
    for name in vendo.sdk.__all__:
        assert getattr(vendo.sdk, name) is not None


def test_submodules_export_what_they_define() -> None:
    for module in (
        vendo.sdk.coder,
        vendo.sdk.exceptions,
        vendo.sdk.input,
        vendo.sdk.model,
        vendo.sdk.predictor,
        vendo.sdk.types,
    ):
        for name in module.__all__:
            assert hasattr(module, name), (module.__name__, name)


def test_version_is_the_cog_release_with_vendo_as_local_label() -> None:
    import vendo

    version = Version(vendo.sdk.__version__)
    assert version.public == "0.23.1"
    assert version.local == f"vendo.{vendo.__version__}"
    # compares as the Cog release it follows
    assert Version("0.23.0") < version
    assert SpecifierSet(">=0.16,<=0.23.1").contains(version)
