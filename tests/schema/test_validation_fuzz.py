"""Property-based fuzzing of the input validator (issue 9): whatever a request's
``input`` holds, :func:`validate_input` answers with the valid inputs or raises
:class:`InputValidationError`, never anything else; and what it accepts can always be
sent to the runner (strict JSON, valid UTF-8), so no accepted input can fail later
between taking a runner slot and the runner accepting the prediction."""

from __future__ import annotations

import json
import math
from typing import Any, Dict, List, Optional, Union

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vendo.runner.protocol import encode
from vendo.schema import InputValidationError, inspect_predictor, openapi_document, validate_input
from vendo.schema.validation import INT_MAX, INT_MIN
from vendo.sdk import Input, Path, Secret


def run(
    prompt: str = Input(min_length=2, max_length=5, regex="^[a-z]+$"),
    text: str = "hi",
    steps: int = Input(default=10, ge=1, le=50),
    seed: int = 0,
    scale: float = 1.0,
    ratio: float = Input(default=0.5, ge=0.0, le=1.0),
    fast: bool = False,
    color: str = Input(default="red", choices=["red", "green"]),
    size: int = Input(default=1, choices=[1, 2]),
    image: Optional[Path] = None,
    token: Secret = Input(default=None),
    tags: List[str] = Input(default=[]),
    weights: List[float] = Input(default=[]),
    extra: Dict[str, Any] = Input(default={}),
    mixed: Union[str, float, None] = None,
    either: Union[bool, int, float, str] = 0,
) -> str:
    return prompt


SCHEMAS = openapi_document(inspect_predictor(run, "run", is_method=False))["components"]["schemas"]
NAMES = list(SCHEMAS["Input"]["properties"])

# What json.loads can produce from a hostile body (NaN and Infinity literals, 1e400,
# 10**400, \ud800 escapes, deep nesting), and more: the validator also runs on inputs
# that did not come through the /v1 parser (serve-model, vendo predict, the runner).
hostile_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**18, max_value=10**400),
    st.integers(min_value=-(10**400), max_value=-(10**18)),
    st.sampled_from([INT_MAX, INT_MAX + 1, INT_MIN, INT_MIN - 1, 10**400, -(10**400)]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(),
    st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1),
    st.sampled_from(["abc", "red", "http://x/y.png", "\ud800", "a\udfffb", ""]),
)
json_values = st.recursive(
    hostile_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=5), st.just("\ud800")), inner, max_size=4),
    ),
    max_leaves=12,
)
payloads = st.dictionaries(
    st.one_of(st.sampled_from(NAMES), st.text(max_size=8)), json_values, max_size=8
)


def _deep(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payloads)
def test_the_validator_only_ever_raises_its_own_error(payload: Dict[str, Any]) -> None:
    try:
        valid = validate_input(SCHEMAS["Input"], payload, SCHEMAS)
    except InputValidationError as exc:
        assert exc.errors and all(e["loc"][-1] in payload or e["msg"] for e in exc.errors)
        return
    # accepted: strict JSON and valid UTF-8, as stored and as sent to the runner
    json.dumps(dict(valid), allow_nan=False)
    encode({"type": "predict", "id": "p", "input": dict(valid)})
    assert set(valid) <= set(NAMES)
    for name in ("steps", "seed", "size"):
        if name in valid:
            assert INT_MIN <= valid[name] <= INT_MAX
    for name in ("scale", "ratio"):
        if name in valid:
            assert math.isfinite(valid[name])


@settings(max_examples=50, deadline=None)
@given(st.sampled_from(NAMES), st.integers(min_value=1, max_value=3000))
def test_deep_values_are_refused_or_carried_never_a_crash(name: str, depth: int) -> None:
    try:
        valid = validate_input(SCHEMAS["Input"], {"prompt": "abc", name: _deep(depth)}, SCHEMAS)
    except InputValidationError:
        return
    assert name in ("extra", "mixed", "either", "tags", "weights") or valid


def test_the_reported_hostile_values_name_their_field() -> None:
    cases = {
        "text": "\ud800",
        "scale": math.nan,
        "ratio": math.inf,
        "weights": [1.0, 10**400],
        "seed": 10**400,
        "steps": 1e300,
        "extra": {"a": [math.nan]},
        "tags": ["ok", "\udc00"],
    }
    for name, value in cases.items():
        try:
            validate_input(SCHEMAS["Input"], {"prompt": "abc", name: value}, SCHEMAS)
        except InputValidationError as exc:
            assert [e["loc"] for e in exc.errors] == [["body", "input", name]], name
        else:
            raise AssertionError(f"{name}={value!r} was accepted")


def test_a_valid_integer_at_the_edge_of_the_range_passes() -> None:
    valid = validate_input(
        SCHEMAS["Input"], {"prompt": "abc", "seed": INT_MAX, "scale": 10**300}, SCHEMAS
    )
    assert valid["seed"] == INT_MAX and valid["scale"] == 1e300
