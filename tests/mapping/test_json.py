"""JSON helpers: paths into resources, and lists shared with others."""

from __future__ import annotations

from fhir_cm.mapping._json import get_in, merge_list, set_in


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
