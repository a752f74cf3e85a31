"""The people and organisations a synthetic run shares between its cases.

Case managers, primary-care providers and organisations come from small pools drawn once per run,
so the same case manager carries many cases (caseloads exist) and the same hospital discharges many
patients — as in a real region. Everything is drawn from the run's random generator: same seed, same
pools, same ids.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass

from fhir_cm.domain import Party, PartyKind

from ._catalogue import FIRST_NAMES, ORGANISATIONS, SURNAMES

CASE_MANAGERS = 10
PRIMARY_CARE_PROVIDERS = 12
SPECIALISTS = 8
THERAPISTS = 4
SOCIAL_WORKERS = 5


def random_id(rng: random.Random) -> str:
    """An entity id drawn from ``rng`` (a UUID's hex), so ids repeat exactly for the same seed."""
    return uuid.UUID(int=rng.getrandbits(128)).hex


def person_name(rng: random.Random) -> str:
    """An invented full name."""
    return f"{rng.choice(FIRST_NAMES)} {rng.choice(SURNAMES)}"


def person(rng: random.Random, kind: PartyKind) -> Party:
    """A new invented person of ``kind`` with a fresh id."""
    return Party(kind=kind, id=random_id(rng), name=person_name(rng))


@dataclass(frozen=True)
class Pools:
    """The practitioners and organisations of one synthetic region."""

    case_managers: tuple[Party, ...]
    primary_care: tuple[Party, ...]
    specialists: tuple[Party, ...]
    therapists: tuple[Party, ...]
    social_workers: tuple[Party, ...]
    organisations: dict[str, tuple[Party, ...]]


def build_pools(rng: random.Random) -> Pools:
    """Draw the region's practitioners and give each organisation of the catalogue an id."""

    def practitioners(n: int) -> tuple[Party, ...]:
        return tuple(person(rng, PartyKind.PRACTITIONER) for _ in range(n))

    return Pools(
        case_managers=practitioners(CASE_MANAGERS),
        primary_care=practitioners(PRIMARY_CARE_PROVIDERS),
        specialists=practitioners(SPECIALISTS),
        therapists=practitioners(THERAPISTS),
        social_workers=practitioners(SOCIAL_WORKERS),
        organisations={
            category: tuple(Party(kind=PartyKind.ORGANISATION, id=random_id(rng), name=name) for name in names)
            for category, names in ORGANISATIONS.items()
        },
    )
