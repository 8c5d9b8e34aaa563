"""Cache validators, called directly as Prefect 1's tests call them (None inputs included)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from resultkit.cache_validators import (
    all_inputs,
    all_parameters,
    duration_only,
    never_use,
    partial_inputs_only,
    partial_parameters_only,
)
from resultkit.states import Cached

LATER = datetime.now(timezone.utc) + timedelta(days=1)
EARLIER = datetime.now(timezone.utc) - timedelta(days=1)


def cached(inputs=None, parameters=None, expires=LATER):
    return Cached(
        "c", 1, input_tokens=inputs, cached_parameters=parameters, cached_result_expiration=expires
    )


ALL = [
    never_use,
    duration_only,
    all_inputs,
    all_parameters,
    partial_inputs_only(["x"]),
    partial_parameters_only(["x"]),
]


@pytest.mark.parametrize("validator", ALL, ids=lambda v: v.__name__)
def test_expired_is_false_even_with_none_arguments(validator):
    assert validator(cached({"x": "1"}, {"x": "1"}, EARLIER), None, None) is False


def test_never_use_with_nothing():
    assert never_use(None, None, None) is False


def test_duration_only_with_none_arguments():
    assert duration_only(cached(expires=LATER), None, None) is True
    assert duration_only(cached(expires=None), None, None) is True


def test_all_inputs_none_is_false():
    assert all_inputs(cached({"x": "1"}), None, None) is False
    assert all_inputs(cached({}), None, None) is False
    assert all_inputs(cached({"x": "1"}), {"x": "1"}, None) is True
    assert all_inputs(cached({"x": "1"}), {"x": "1", "noise": "e"}, None) is False


def test_all_parameters_none_is_false():
    assert all_parameters(cached(parameters={"p": "1"}), None, None) is False
    assert all_parameters(cached(parameters={}), None, None) is False
    assert all_parameters(cached(parameters={"p": "1"}), None, {"p": "1"}) is True
    assert all_parameters(cached(parameters={"p": "1"}), None, {"p": "2"}) is False


def test_partial_inputs_only_none_is_false():
    validator = partial_inputs_only(validate_on=["x"])
    assert validator(cached(inputs={"x": "5"}), None, None) is False
    assert validator(cached(parameters={"x": "5"}), {"x": "5"}, None) is False
    assert validator(cached(inputs={"x": "5", "s": "a"}), {"x": "5", "s": "b"}, None) is True
    assert validator(cached(inputs={"x": "5"}), {"x": "6"}, None) is False


def test_partial_parameters_only_none_is_false():
    validator = partial_parameters_only(validate_on=["x"])
    assert validator(cached(parameters={"x": "5"}), None, None) is False
    assert validator(cached(inputs={"x": "5"}), None, {"x": "5"}) is False
    assert validator(cached(parameters={"x": "5", "s": "a"}), None, {"x": "5", "s": "b"}) is True


@pytest.mark.parametrize("factory", [partial_inputs_only, partial_parameters_only])
def test_partial_without_names_validates_on_expiry_only(factory):
    validator = factory()
    assert validator(cached({"x": "1"}, {"x": "1"}), None, None) is True
    assert validator(cached({"x": "1"}, {"x": "1"}, EARLIER), None, None) is False


def test_a_state_without_cache_fields_is_not_an_error():
    class Bare:
        pass

    for validator in ALL:
        assert validator(Bare(), {"x": "1"}, {"x": "1"}) in (True, False)
