"""The case's random draws, named for what they mean, and the one unit of time journeys are built in."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Sequence
from typing import TypeVar

from ._people import random_id

__all__ = ["Draw", "days"]

T = TypeVar("T")


def days(n: int) -> dt.timedelta:
    return dt.timedelta(days=n)


class Draw:
    """The case's random generator with the few draws the journey needs, named for what they mean."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def id(self) -> str:
        return random_id(self.rng)

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def randint(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, max(lo, hi))

    def one(self, items: Sequence[T]) -> T:
        return self.rng.choice(items)

    def weighted(self, weights: dict[T, int] | dict[T, float]) -> T:
        keys = list(weights)
        return self.rng.choices(keys, weights=[weights[k] for k in keys])[0]

    def some(self, items: Sequence[T], k: int) -> list[T]:
        return self.rng.sample(list(items), min(k, len(items)))
