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
        b'{"value":1e3}',
        b'{"value":[1,2E-5,-1e+2]}',
        b'{"value":123456789012345678901234567890}',
        b'{"value":-9223372036854775809}',
        b'{"value":18446744073709551616}',
        b'{"value":12345678901234567890.5}',
        b'{"value":[-1234567890123456.78]}',
        b'{"id":"urn:uuid:1e345678-1e34-1234-1234-123456789012","value":1e3}',
    ],
)
def test_a_number_is_written_back_as_it_was_read(text: bytes) -> None:
    assert dumps(loads(text)) == text
    assert dumps(loads(text.decode())) == text


def test_a_kept_decimal_is_still_the_number_it_says() -> None:
    value = loads(b'{"value":1.50}')["value"]
    assert isinstance(value, ExactDecimal) and value == 1.5 and value + 1 == 2.5
    assert pickle.loads(pickle.dumps(value)).text == copy.deepcopy(value).text == "1.50"


def test_a_number_with_no_point_is_found_through_blanks_and_kept_as_written() -> None:
    value = loads(b'{"value": [ 1E3 ,\n  -2e-5 ],\n "big" : 123456789012345678901234567890 }')
    assert dumps(value) == b'{"value":[1E3,-2e-5],"big":123456789012345678901234567890}'
    assert value["value"][0] == 1000.0 and value["big"] == 1.2345678901234568e29


def test_integers_within_64_bits_stay_integers_beside_a_kept_number() -> None:
    value = loads(b'{"value":1e3,"ints":[18446744073709551615,-9223372036854775808,7]}')
    assert value["ints"] == [18446744073709551615, -9223372036854775808, 7]
    assert all(type(number) is int for number in value["ints"])


def test_numbers_a_float_prints_as_written_stay_floats_and_bad_json_fails_as_orjson_fails() -> None:
    assert type(loads(b'{"value":1.5}')["value"]) is float
    assert type(loads(b'{"value":1.50,"other":2.5}')["other"]) is float
    with pytest.raises(orjson.JSONDecodeError):
        loads(b'{"value":1.50')
