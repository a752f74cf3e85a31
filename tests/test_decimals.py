"""FHIR JSON with decimals kept as written (1.50 is not 1.5), and every other number as orjson reads it."""

from __future__ import annotations

import copy
import pickle

import orjson
import pytest

from fhir_cm.decimals import ExactDecimal, dumps, loads


@pytest.mark.parametrize(
    "text",
    [
        b'{"value":1.50}',
        b'{"value":[1.5,2.00,-0.10,3]}',
        b'{"value":0.000010}',
        b'{"value":1.5e3}',
        b'{"value":1.000E+2}',
        b'{"value":3.14159265358979323846}',
        b'{"lastUpdated":"2024-01-01T10:00:00.120+00:00","value":1.25}',
    ],
)
def test_a_number_is_written_back_as_it_was_read(text: bytes) -> None:
    assert dumps(loads(text)) == text
    assert dumps(loads(text.decode())) == text


def test_a_kept_decimal_is_still_the_number_it_says() -> None:
    value = loads(b'{"value":1.50}')["value"]
    assert isinstance(value, ExactDecimal) and value == 1.5 and value + 1 == 2.5
    assert pickle.loads(pickle.dumps(value)).text == copy.deepcopy(value).text == "1.50"


def test_numbers_a_float_prints_as_written_stay_floats_and_bad_json_fails_as_orjson_fails() -> None:
    assert type(loads(b'{"value":1.5}')["value"]) is float
    assert type(loads(b'{"value":1.50,"other":2.5}')["other"]) is float
    with pytest.raises(orjson.JSONDecodeError):
        loads(b'{"value":1.50')
