"""Hospital use: the stays a journey starts with — emergency visits, admissions, the post-acute pathway
after the index admission, readmissions — in time order, none after ``today``.

This is what identification screens, so the later parts of the journey (eligibility, referrals,
follow-ups) read it rather than drawing their own.
"""

from __future__ import annotations

import datetime as dt

from fhir_cm.domain import CareSetting, DischargeDisposition, Party, ProgrammeType, Stay, StayStatus

from . import _catalogue as cat
from ._draw import Draw, days
from ._people import Pools

__all__ = ["HOSPITALS", "HospitalUse", "StayChain"]

P = ProgrammeType

PATHWAYS = {
    P.HEALTH_CARE: {"home": 35, "home-health": 30, "skilled-nursing": 30, "rehabilitation": 5},
    P.REHABILITATION: {"rehabilitation": 50, "skilled-nursing": 30, "home-health": 20},
    P.BEHAVIOURAL_HEALTH: {"home": 1},
}
HOSPITAL_USE = {P.HEALTH_CARE: 0.7, P.REHABILITATION: 0.9, P.BEHAVIOURAL_HEALTH: 0.45}
READMISSION_CHANCE = 0.3
#: Of the people discharged to skilled nursing, the share who cannot go home and move to long-term care.
LONG_TERM_CARE_CHANCE = 0.12
HOSPITALS = (CareSetting.ACUTE_HOSPITAL, CareSetting.PSYCHIATRIC)


class StayChain:
    """Stays appended in time order; a stay still running on ``today`` ends the chain (nothing follows it)."""

    def __init__(self, draw: Draw, today: dt.date) -> None:
        self.draw, self.today = draw, today
        self.stays: list[Stay] = []
        self.stopped = False

    def add(
        self,
        setting: CareSetting,
        start: dt.date,
        length: int,
        disposition: DischargeDisposition | None,
        provider: Party,
    ) -> Stay | None:
        if self.stopped or start > self.today:
            self.stopped = True
            return None
        end = start + days(length)
        if end > self.today:
            self.stopped = True
            stay = Stay(
                id=self.draw.id(), setting=setting, status=StayStatus.IN_PROGRESS, start=start, provider=provider
            )
        else:
            stay = Stay(
                id=self.draw.id(),
                setting=setting,
                start=start,
                end=end,
                discharge_disposition=disposition,
                provider=provider,
            )
        self.stays.append(stay)
        return stay


class HospitalUse:
    """Draws the stays of one case from the case's own draws, the region's organisations and today."""

    def __init__(self, draw: Draw, pools: Pools, today: dt.date) -> None:
        self.draw, self.pools, self.today = draw, pools, today

    def org(self, category: str) -> Party:
        return self.draw.one(self.pools.organisations[category])

    def plan(self, programme: ProgrammeType, start: dt.date) -> tuple[list[Stay], list[Stay]]:
        """The stays of the case, and those among them after which the person went home (follow-up due)."""
        d = self.draw
        chain = StayChain(d, self.today)
        hospital = self.org(cat.HOSPITAL)
        home_after: list[Stay] = []
        if programme in HOSPITAL_USE and d.chance(HOSPITAL_USE[programme]):
            psychiatric = programme is P.BEHAVIOURAL_HEALTH
            unit = self.org(cat.PSYCHIATRIC) if psychiatric else hospital
            setting = CareSetting.PSYCHIATRIC if psychiatric else CareSetting.ACUTE_HOSPITAL
            index_start = start - days(d.randint(0, 2))
            self._history(chain, hospital, unit, setting, index_start, max_ed=3, max_admissions=2)
            # Referred to case management during the index admission, so it is still running on `start`.
            length = max((start - index_start).days + 1, d.randint(7, 21) if psychiatric else d.randint(3, 10))
            self._episode(chain, programme, hospital, unit, setting, index_start, length, home_after)
            if d.chance(0.15) and chain.stays and chain.stays[-1].end is not None:
                chain.add(
                    CareSetting.EMERGENCY,
                    chain.stays[-1].end + days(d.randint(20, 90)),
                    0,
                    DischargeDisposition.HOME,
                    hospital,
                )
        elif programme is P.SOCIAL_WORK and d.chance(0.45):
            self._history(chain, hospital, hospital, CareSetting.ACUTE_HOSPITAL, start, max_ed=4, max_admissions=0)
        elif programme is P.CHILD_PROTECTION and d.chance(0.1):
            chain.add(CareSetting.EMERGENCY, start + days(d.randint(10, 120)), 0, DischargeDisposition.HOME, hospital)
        return chain.stays, home_after

    def _history(
        self,
        chain: StayChain,
        hospital: Party,
        unit: Party,
        setting: CareSetting,
        before: dt.date,
        *,
        max_ed: int,
        max_admissions: int,
    ) -> None:
        """Emergency visits and admissions in the half year before ``before``: what screening finds."""
        d = self.draw
        events = ["ed"] * d.randint(0, max_ed) + ["admission"] * d.randint(0, max_admissions)
        d.rng.shuffle(events)
        cursor = before - days(d.randint(150, 200))
        for event in events:
            cursor += days(d.randint(7, 40))
            length = 0 if event == "ed" else d.randint(2, 7)
            if cursor + days(length) >= before - days(1):
                break
            if event == "ed":
                disposition = DischargeDisposition.LEFT_AGAINST_ADVICE if d.chance(0.1) else DischargeDisposition.HOME
                chain.add(CareSetting.EMERGENCY, cursor, 0, disposition, hospital)
            else:
                chain.add(setting, cursor, length, DischargeDisposition.HOME, unit)
                cursor += days(length)

    def _episode(
        self,
        chain: StayChain,
        programme: ProgrammeType,
        hospital: Party,
        unit: Party,
        setting: CareSetting,
        admitted: dt.date,
        length: int,
        home_after: list[Stay],
    ) -> None:
        """The index admission, the post-acute pathway after it, and maybe a readmission within 30 days."""
        d = self.draw
        pathway = d.weighted(PATHWAYS[programme])
        readmit = pathway in ("home", "home-health") and d.chance(READMISSION_CHANCE)
        disposition = {
            "skilled-nursing": DischargeDisposition.SKILLED_NURSING,
            "rehabilitation": DischargeDisposition.REHABILITATION,
        }.get(pathway, DischargeDisposition.HOME)
        index = self._admission(chain, hospital, unit, setting, admitted, length, disposition, via_ed=d.chance(0.4))
        if index is None or index.end is None:
            return
        discharged = index.end
        readmitted = discharged + days(d.randint(3, 27))
        if pathway in ("home", "home-health"):
            home_after.append(index)
        if pathway == "home-health":
            hh_days = (readmitted - discharged).days if readmit else d.randint(14, 45)
            hh_disposition = DischargeDisposition.OTHER_HEALTHCARE_FACILITY if readmit else DischargeDisposition.HOME
            chain.add(CareSetting.HOME_HEALTH, discharged, hh_days, hh_disposition, self.org(cat.HOME_HEALTH))
        elif pathway in ("skilled-nursing", "rehabilitation"):
            self._post_acute(chain, pathway, discharged, home_after)
        if readmit:
            again = self._admission(
                chain, hospital, unit, setting, readmitted, d.randint(3, 8),
                DischargeDisposition.SKILLED_NURSING if d.chance(0.25) else DischargeDisposition.HOME,
                via_ed=d.chance(0.5),
            )  # fmt: skip
            if again is None or again.end is None:
                return
            if again.discharge_disposition is DischargeDisposition.HOME:
                home_after.append(again)
            else:
                self._post_acute(chain, "skilled-nursing", again.end, home_after)

    def _admission(
        self,
        chain: StayChain,
        hospital: Party,
        unit: Party,
        setting: CareSetting,
        on: dt.date,
        length: int,
        disposition: DischargeDisposition,
        *,
        via_ed: bool,
    ) -> Stay | None:
        if via_ed:  # seen in the emergency department and admitted the same day
            chain.add(CareSetting.EMERGENCY, on, 0, None, hospital)
        return chain.add(setting, on, length, disposition, unit)

    def _post_acute(self, chain: StayChain, pathway: str, on: dt.date, home_after: list[Stay]) -> None:
        """Skilled nursing or inpatient rehabilitation, then often home health, then home."""
        d = self.draw
        if pathway == "skilled-nursing":
            if d.chance(LONG_TERM_CARE_CHANCE):  # could not go home: moved on to long-term care
                chain.add(CareSetting.SKILLED_NURSING, on, d.randint(20, 60), DischargeDisposition.LONG_TERM_CARE,
                          self.org(cat.SKILLED_NURSING))  # fmt: skip
                return
            facility = chain.add(CareSetting.SKILLED_NURSING, on, d.randint(10, 28), DischargeDisposition.HOME,
                                 self.org(cat.SKILLED_NURSING))  # fmt: skip
            home_health = 0.6
        else:
            facility = chain.add(CareSetting.INPATIENT_REHABILITATION, on, d.randint(10, 21), DischargeDisposition.HOME,
                                 self.org(cat.INPATIENT_REHAB))  # fmt: skip
            home_health = 0.75
        if facility is None or facility.end is None:
            return
        home_after.append(facility)
        if d.chance(home_health):
            chain.add(CareSetting.HOME_HEALTH, facility.end, d.randint(14, 45), DischargeDisposition.HOME,
                      self.org(cat.HOME_HEALTH))  # fmt: skip
