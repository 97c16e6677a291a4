"""Schemathesis hooks of test_v1_schemathesis.py, loaded by the ``st`` child process
through ``SCHEMATHESIS_HOOKS``.

Random strings rarely name a model that exists, so besides what schemathesis generates
from the document, these hooks also send cases aimed at the fixture models the test
pushed (``VENDO_FUZZ_MODELS``: ``{"name": "version id"}``, owned by
``VENDO_FUZZ_OWNER``): predictions on their versions with fuzzed inputs, and the model
routes on their names. That way the fuzzing reaches input validation, the queue and the
runners, not only the 404s.
"""

from __future__ import annotations

import json
import os
from typing import Any

import schemathesis
from hypothesis import strategies as st

MODELS: dict[str, str] = json.loads(os.environ.get("VENDO_FUZZ_MODELS", "{}"))
OWNER = os.environ.get("VENDO_FUZZ_OWNER", "admin")

# Inputs for each fixture model (tests/fixtures/fuzz_inputs, fuzz_tokens): in range and
# out of it, known names and unknown ones. No NaN or Infinity: schemathesis's client
# refuses to send them (not JSON), so the body parser's own fuzz test covers those.
_FLOATS = st.floats(allow_nan=False, allow_infinity=False)
_INTS = st.integers()
# integers past float range too: a number input must refuse them with a 422, not a 500
_RATIOS = st.one_of(st.floats(-0.5, 1.5), _FLOATS, st.integers(min_value=2**1024))
_INPUTS: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "inputs": st.fixed_dictionaries(
        {"text": st.text(max_size=20)},
        optional={
            "count": st.one_of(st.integers(-1, 7), _INTS),
            "ratio": st.one_of(_RATIOS, st.integers(-(2**53), 2**53)),
            "flag": st.one_of(st.booleans(), st.sampled_from(["true", 1, None])),
            "mode": st.sampled_from(["fast", "slow", "other", ""]),
            "unknown": st.text(max_size=5),
        },
    ),
    "tokens": st.fixed_dictionaries({}, optional={"count": st.integers(-1, 4)}),
}


def _on_fixture(body: dict[str, Any], with_version: bool) -> st.SearchStrategy[Any]:
    def build(name: str) -> st.SearchStrategy[Any]:
        extra = {"version": MODELS[name]} if with_version else {}
        return _INPUTS[name].map(lambda values: {**body, **extra, "input": values})

    return st.sampled_from(sorted(MODELS)).flatmap(build)


@schemathesis.hook("flatmap_body").apply_to(method="POST", path="/v1/predictions")
def predictions_on_fixture_versions(context: Any, body: Any) -> st.SearchStrategy[Any]:
    if not isinstance(body, dict) or not MODELS:
        return st.just(body)
    return st.one_of(st.just(body), _on_fixture(body, with_version=True))


@schemathesis.hook("flatmap_path_parameters").apply_to(path_regex=r"^/v1/models/\{owner\}")
def model_routes_on_fixture_models(
    context: Any, parameters: dict[str, Any]
) -> st.SearchStrategy[dict[str, Any]]:
    if not MODELS:
        return st.just(parameters)
    real = [{**parameters, "owner": OWNER, "name": name} for name in sorted(MODELS)]
    return st.sampled_from([parameters, *real])


@schemathesis.hook("flatmap_body").apply_to(
    method="POST", path="/v1/models/{owner}/{name}/predictions"
)
def model_predictions_with_fixture_inputs(context: Any, body: Any) -> st.SearchStrategy[Any]:
    # the path may or may not name a fixture model: the inputs of either are tried
    if not isinstance(body, dict) or not MODELS:
        return st.just(body)
    return st.one_of(st.just(body), _on_fixture(body, with_version=False))


# the id of the token the run authenticates with (the admin's first, made at start-up)
KEEP_TOKEN = os.environ.get("VENDO_FUZZ_KEEP_TOKEN", "1")


@schemathesis.hook("filter_path_parameters").apply_to(method="DELETE", path="/v1/tokens/{id}")
def keep_the_runs_own_token(context: Any, parameters: dict[str, Any]) -> bool:
    # revoking it would turn the rest of the run into 401s, which fuzz nothing
    return str(parameters.get("id", "")).lstrip("0") != KEEP_TOKEN
