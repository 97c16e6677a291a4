from __future__ import annotations

import pytest

import vendo.errors as errors
from vendo.errors import FieldError, InvalidInput, NotFound, RateLimited, VendoError


def test_all_is_exact() -> None:
    public = {
        name
        for name, value in vars(errors).items()
        if not name.startswith("_") and getattr(value, "__module__", None) == errors.__name__
    }
    assert public == set(errors.__all__)


@pytest.mark.parametrize(
    "exc",
    [
        NotFound("model acme/x not found"),
        RateLimited("slow down", retry_after=3),
        InvalidInput([FieldError("prompt", "required", "prompt is required")]),
        VendoError("boom"),
    ],
)
def test_one_problem_shape(exc: VendoError) -> None:
    body = exc.to_problem()
    assert set(body) >= {"title", "status", "detail"}
    assert body["status"] == exc.status
    assert isinstance(body["detail"], str) and body["detail"]


def test_invalid_input_lists_each_field() -> None:
    exc = InvalidInput(
        [
            FieldError("steps", "less_than_equal", "steps must be <= 50"),
            FieldError("prompt", "required", "prompt is required"),
        ]
    )
    body = exc.to_problem()
    assert body["status"] == 422
    assert [f["field"] for f in body["invalid_fields"]] == ["steps", "prompt"]
    assert "steps must be <= 50" in body["detail"]
