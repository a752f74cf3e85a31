"""The façade's copies kept between starts (``facade_copies``): handed back only for the stamp and the
fingerprint they were made with, replaced in place, on both backends."""

from __future__ import annotations

import datetime as dt
import threading

from fhir_cm.store import CaseStamp, FacadeCopy, Store, case_stamps, facade_copies, keep_facade_copies

T = dt.datetime(2025, 3, 1, 9, 30, 15, 123456, tzinfo=dt.UTC)
STAMP = CaseStamp(3, T, T + dt.timedelta(hours=1), 2)


def test_a_copy_is_handed_back_only_for_its_stamp_fingerprint_and_version(store: Store) -> None:
    with store.session() as s:
        keep_facade_copies(
            s, "R4", "made-1", {"case-1": FacadeCopy(STAMP, b"\x00one"), "case-2": FacadeCopy(STAMP, b"two")}
        )
    with store.session(read_only=True) as s:
        assert facade_copies(s, "R4", "made-1", {"case-1": STAMP, "case-2": STAMP}) == {
            "case-1": b"\x00one",
            "case-2": b"two",
        }
        assert facade_copies(s, "R4", "made-1", {"case-1": STAMP}) == {"case-1": b"\x00one"}, "only those asked for"
        assert facade_copies(s, "R4", "made-2", {"case-1": STAMP}) == {}, "made with something else"
        assert facade_copies(s, "R5", "made-1", {"case-1": STAMP}) == {}, "another FHIR version"
        for moved in (
            STAMP._replace(revision=4),
            STAMP._replace(updated_at=T + dt.timedelta(microseconds=1)),
            STAMP._replace(resources_at=None),
            STAMP._replace(resources=3),
        ):
            assert facade_copies(s, "R4", "made-1", {"case-1": moved}) == {}, moved
        assert facade_copies(s, "R4", "made-1", {}) == {}


def test_keeping_again_replaces_the_copy_in_place(store: Store) -> None:
    newer = STAMP._replace(revision=4, resources_at=None, resources=0)
    with store.session() as s:
        keep_facade_copies(s, "R4", "made-1", {"case-1": FacadeCopy(STAMP, b"old")})
    with store.session() as s:
        keep_facade_copies(s, "R4", "made-2", {"case-1": FacadeCopy(newer, b"new")})
    with store.session(read_only=True) as s:
        assert facade_copies(s, "R4", "made-1", {"case-1": STAMP}) == {}
        assert facade_copies(s, "R4", "made-2", {"case-1": newer}) == {"case-1": b"new"}
    only_time_gone = STAMP._replace(resources_at=None)
    with store.session() as s:
        keep_facade_copies(s, "R4", "made-2", {"case-2": FacadeCopy(STAMP, b"with")})
    with store.session() as s:
        keep_facade_copies(s, "R4", "made-2", {"case-2": FacadeCopy(only_time_gone, b"without")})
    with store.session(read_only=True) as s:
        assert facade_copies(s, "R4", "made-2", {"case-2": only_time_gone}) == {"case-2": b"without"}


def test_the_stamp_read_back_from_the_store_matches_a_copy_made_from_it(store_with_cases: Store) -> None:
    """The stamps a façade keeps copies under come from ``case_stamps``: read back, they are equal."""
    with store_with_cases.session(read_only=True) as s:
        stamps = case_stamps(s)
    with store_with_cases.session() as s:
        keep_facade_copies(s, "R4", "m", {c: FacadeCopy(stamp, c.encode()) for c, stamp in stamps.items()})
    with store_with_cases.session(read_only=True) as s:
        assert facade_copies(s, "R4", "m", case_stamps(s)) == {c: c.encode() for c in stamps}


def test_two_workers_keeping_the_same_cases_at_once_both_succeed(store: Store) -> None:
    copies = {f"case-{n:03}": FacadeCopy(STAMP, b"x" * n) for n in range(300)}
    failures: list[BaseException] = []
    start = threading.Barrier(2)

    def keep() -> None:
        try:
            start.wait()
            for _ in range(3):
                with store.session() as s:
                    keep_facade_copies(s, "R4", "made-1", copies)
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    workers = [threading.Thread(target=keep) for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert failures == []
    with store.session(read_only=True) as s:
        assert facade_copies(s, "R4", "made-1", dict.fromkeys(copies, STAMP)) == {
            c: v.payload for c, v in copies.items()
        }


def test_a_copy_made_as_the_kept_one_was_is_not_written_again_unless_asked(store: Store) -> None:
    """Two workers starting at once make the same copies: the second leaves the first's in place, not
    writing the payload again; one that could not be read is replaced when asked."""
    with store.session() as s:
        keep_facade_copies(s, "R4", "made-1", {"case-1": FacadeCopy(STAMP, b"first")})
    with store.session() as s:
        keep_facade_copies(s, "R4", "made-1", {"case-1": FacadeCopy(STAMP, b"second")})
    with store.session(read_only=True) as s:
        assert facade_copies(s, "R4", "made-1", {"case-1": STAMP}) == {"case-1": b"first"}
    with store.session() as s:
        keep_facade_copies(s, "R4", "made-1", {"case-1": FacadeCopy(STAMP, b"mended")}, rewrite=True)
    with store.session(read_only=True) as s:
        assert facade_copies(s, "R4", "made-1", {"case-1": STAMP}) == {"case-1": b"mended"}
