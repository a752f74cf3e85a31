"""JSON helpers: paths into resources, and lists shared with others."""

from __future__ import annotations

import copy
import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fhir_cm.mapping._json import absent, get_in, getter, merge_list, read_day, set_in

_KEYS = st.sampled_from(["a", "b", "c"])
#: Small JSON trees over few keys, so paths often meet what is there (explicit nulls and empty containers too).
_JSON = st.recursive(
    st.none() | st.just("x") | st.integers(0, 2),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=3),
    max_leaves=8,
)
_PATHS = st.lists(_KEYS | st.integers(0, 2), min_size=1, max_size=3).filter(lambda p: isinstance(p[0], str))


def test_set_in_creates_what_is_missing_and_removing_prunes_empty_containers() -> None:
    obj: dict = {"keep": 1}
    set_in(obj, ("target", 0, "measure", "text"), "x")
    assert obj == {"keep": 1, "target": [{"measure": {"text": "x"}}]}
    assert get_in(obj, ("target", 0, "measure", "text")) == "x"
    set_in(obj, ("target", 0, "measure", "text"), None)
    assert obj == {"keep": 1}
    assert get_in(obj, ("target", 3, "x")) is None


def test_removing_leaves_siblings_alone() -> None:
    obj = {"period": {"start": "2024-01-01", "end": "2024-02-01"}}
    set_in(obj, ("period", "end"), None)
    assert obj == {"period": {"start": "2024-01-01"}}


@given(obj=st.dictionaries(_KEYS, _JSON, max_size=3), path=_PATHS)
def test_a_path_laid_out_once_reads_as_get_in_and_absent_means_removing_changes_nothing(obj: dict, path: list) -> None:
    assert getter(tuple(path))(obj) == get_in(obj, path)
    if absent(tuple(path))(obj):
        removed = copy.deepcopy(obj)
        set_in(removed, path, None)
        assert removed == obj


def test_absent_is_false_where_removing_would_change_something() -> None:
    assert not absent(("a",))({"a": None})  # an explicit null is removed
    assert not absent(("a", "b"))({"a": {}})  # the empty container would be pruned
    assert absent(("a", "b"))({"a": {"c": 1}})
    assert absent(("a", 0, "b"))({})


def decode(item: dict) -> str | None:
    return item.get("ours")


def encode(value: str) -> dict:
    return {"ours": value}


def test_merge_list_keeps_others_items_in_their_places() -> None:
    old = [{"theirs": 1}, {"ours": "a", "extra": True}, {"theirs": 2}, {"ours": "b"}]
    assert merge_list(old, ["b", "c"], decode, encode) == [{"theirs": 1}, {"ours": "b"}, {"theirs": 2}, {"ours": "c"}]
    assert merge_list(old, ["a"], decode, encode) == [{"theirs": 1}, {"ours": "a", "extra": True}, {"theirs": 2}]
    assert merge_list(old, ["a", "b", "d", "e"], decode, encode) == [
        {"theirs": 1},
        {"ours": "a", "extra": True},
        {"theirs": 2},
        {"ours": "b"},
        {"ours": "d"},
        {"ours": "e"},
    ]
    assert merge_list([], ["x"], decode, encode) == [{"ours": "x"}]


def test_merge_list_updates_a_changed_item_in_place_of_replacing_it() -> None:
    old = [{"ours": "a", "n": 1, "extension": ["kept"]}]

    def decode_n(item: dict):
        return (item["ours"], item["n"])

    def update(item: dict, value) -> dict:
        item["n"] = value[1]
        return item

    merged = merge_list(
        old, [("a", 2)], decode_n, lambda v: {"ours": v[0], "n": v[1]}, ident=lambda v: v[0], update=update
    )
    assert merged == [{"ours": "a", "n": 2, "extension": ["kept"]}]


@given(obj=st.dictionaries(_KEYS, _JSON, max_size=3), path=_PATHS, value=st.none() | st.just("v") | st.just([]))
def test_setting_into_a_shallow_copy_changes_nothing_it_shares(obj: dict, path: list, value: object) -> None:
    """An update starts from a shallow copy of its base and shares the rest: ``set_in`` must replace
    the containers on its way, never change them, and give what it gives on a private deep copy."""
    before = copy.deepcopy(obj)
    private = copy.deepcopy(obj)
    set_in(private, path, value)
    shallow = dict(obj)
    set_in(shallow, path, value)
    assert obj == before
    assert shallow == private


def test_setting_shares_what_is_off_its_path() -> None:
    base = {"period": {"start": "2024-01-01"}, "note": [{"text": "kept"}], "extension": [{"url": "u"}]}
    obj = dict(base)
    set_in(obj, ("period", "end"), "2024-02-01")
    set_in(obj, ("extension",), None)
    assert obj == {"period": {"start": "2024-01-01", "end": "2024-02-01"}, "note": [{"text": "kept"}]}
    assert base["period"] == {"start": "2024-01-01"} and base["extension"] == [{"url": "u"}]
    assert obj["note"] is base["note"]  # untouched elements are not copied


@pytest.mark.parametrize(
    ("value", "first", "last"),
    [
        ("2024", dt.date(2024, 1, 1), dt.date(2024, 12, 31)),
        ("2024-02", dt.date(2024, 2, 1), dt.date(2024, 2, 29)),
        ("2024-05-10", dt.date(2024, 5, 10), dt.date(2024, 5, 10)),
        ("2024-05-10T23:00:00+01:00", dt.date(2024, 5, 10), dt.date(2024, 5, 10)),
        ("2024-13", None, None),
        ("24", None, None),
        (2024, None, None),
    ],
)
def test_a_partial_date_reads_as_the_first_or_the_last_day_of_its_span(
    value: object, first: dt.date | None, last: dt.date | None
) -> None:
    assert (read_day(value), read_day(value, last=True)) == (first, last)
