"""The referral life cycle follows the Gravity referral state machine."""

from __future__ import annotations

import datetime as dt

import pytest

from fhir_cm.domain import Referral, ReferralStatus, ReferralTransitionError, allowed_referral_moves, move_referral


def referral() -> Referral:
    return Referral(id="r1", kind="housing", service="supported housing", authored=dt.date(2026, 1, 1))


def test_happy_path() -> None:
    r = move_referral(referral(), ReferralStatus.ACCEPTED)
    r = move_referral(r, ReferralStatus.IN_PROGRESS)
    r = move_referral(r, ReferralStatus.COMPLETED)
    assert r.status is ReferralStatus.COMPLETED
    assert allowed_referral_moves(r.status) == frozenset()


def test_reject_needs_reason() -> None:
    with pytest.raises(ValueError, match="needs a status_reason"):
        move_referral(referral(), ReferralStatus.REJECTED)
    assert move_referral(referral(), ReferralStatus.REJECTED, "no capacity").status_reason == "no capacity"


def test_illegal_move_says_what_is_allowed() -> None:
    with pytest.raises(
        ReferralTransitionError, match="from 'requested' to 'completed'; allowed: accepted, cancelled, rejected"
    ):
        move_referral(referral(), ReferralStatus.COMPLETED)


def test_final_states_allow_nothing() -> None:
    done = move_referral(referral(), ReferralStatus.CANCELLED, "patient moved away")
    with pytest.raises(ReferralTransitionError, match="none \\(it is final\\)"):
        move_referral(done, ReferralStatus.ACCEPTED)
