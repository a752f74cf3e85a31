"""What synthetic journeys are made of: names, organisations, and per-programme needs, goals and services.

Kept as plain data so the journey code reads like the case-management cycle and the content can be
extended without touching it. Every name here is invented: surnames and organisation names are made
up to be plausible yet not belong to anyone, so generated data can never be mistaken for a record.
"""

from __future__ import annotations

from typing import NamedTuple

from fhir_cm.domain import AssessmentDomain as D
from fhir_cm.domain import EligibilityReason as E
from fhir_cm.domain import ProgrammeType as P
from fhir_cm.domain import ReferralKind as K

FIRST_NAMES = (
    "Ada", "Amir", "Beatrix", "Bram", "Carmen", "Cedric", "Dalia", "Desmond", "Elif", "Emeka", "Farah",
    "Felix", "Greta", "Gideon", "Hana", "Hugo", "Ines", "Isaac", "Jun", "Juno", "Kamala", "Kofi", "Lena",
    "Lionel", "Maeve", "Mateo", "Nadia", "Nils", "Olga", "Omar", "Priya", "Piet", "Rosa", "Rafael",
    "Signe", "Soren", "Tamsin", "Tobias", "Uma", "Viktor", "Wren", "Yusuf", "Zora", "Zeno",
)  # fmt: skip

#: Invented surnames: plausible in form, chosen so that no real person is named.
SURNAMES = (
    "Ashcombe", "Brindlewood", "Calloway-Finch", "Dunmarrow", "Elderquist", "Fennimore", "Gravesend",
    "Hollowell", "Inglethorpe", "Jastrowe", "Kettleby", "Larkspurr", "Marrowby", "Nettlefold",
    "Oakhurst-Vane", "Pendleford", "Quillfeather", "Rookwhistle", "Saltmarsh", "Thistlecombe",
    "Umberfield", "Vantwiller", "Wexmoor", "Yarrowdale", "Zephyrine",
)  # fmt: skip

# Organisation categories: what an organisation does decides which stays and referrals it receives.
HOSPITAL = "hospital"
PSYCHIATRIC = "psychiatric"
SKILLED_NURSING = "skilled-nursing"
INPATIENT_REHAB = "inpatient-rehab"
HOME_HEALTH = "home-health"
PRIMARY_CARE = "primary-care"
THERAPY = "therapy"
BEHAVIOURAL_CLINIC = "behavioural-clinic"
RECOVERY = "recovery"
FOOD = "food"
HOUSING = "housing"
TRANSPORT = "transport"
BENEFITS = "benefits"
EMPLOYMENT = "employment"
FAMILY_SERVICES = "family-services"
SPECIALIST = "specialist"  # not an organisation: a specialist practitioner is the target

#: Invented organisations, by category.
ORGANISATIONS: dict[str, tuple[str, ...]] = {
    HOSPITAL: ("Northbrook General Hospital", "St Aldwyn's Infirmary", "Greyhaven University Hospital"),
    PSYCHIATRIC: ("Linden Vale Psychiatric Unit", "Harrowgate Mental Health Centre"),
    SKILLED_NURSING: ("Elmstead Skilled Nursing Centre", "Briarcliff Nursing and Care", "Tallowmere Care Home"),
    INPATIENT_REHAB: ("Harbourview Rehabilitation Hospital", "Corvale Neuro-Rehabilitation Unit"),
    HOME_HEALTH: ("Meadowlark Home Health", "Brightwick Community Nursing", "Sorrelford Home Care"),
    PRIMARY_CARE: ("Millbrook Family Practice", "Quayside Health Centre"),
    THERAPY: ("Oakridge Outpatient Therapy", "Kestrel Physio and OT"),
    BEHAVIOURAL_CLINIC: ("Willowmere Behavioural Health Clinic", "Ferncastle Community Mental Health Team"),
    RECOVERY: ("Lanternfield Recovery Centre", "Second Dawn Peer Support"),
    FOOD: ("Fernhill Food Bank", "Hearthside Meals on Wheels"),
    HOUSING: ("Cinder Lane Housing Trust", "Ravensholt Supported Housing"),
    TRANSPORT: ("Kestrel Community Transport", "Dial-a-Ride Wexmoor"),
    BENEFITS: ("Brightwater Benefits Advice", "Stonebridge Citizens' Advice"),
    EMPLOYMENT: ("Stonebridge Employment Hub", "Forge Ahead Job Club"),
    FAMILY_SERVICES: ("Juniper Family Services", "Hollybank Children's Centre"),
}


class NeedTemplate(NamedTuple):
    """An assessment finding; ``implies`` is the eligibility reason it is evidence for, if any.

    Multiple co-morbidities is not implied by one finding: it follows from two or more physical ones.
    """

    domain: D
    finding: str
    implies: E | None = None


class GoalTemplate(NamedTuple):
    """A goal; ``self_care`` ones are worded as the patient set them."""

    domain: D
    description: str
    target: str
    self_care: bool = False


class ServiceTemplate(NamedTuple):
    """A referral a programme typically makes, and the kind of organisation that receives it."""

    kind: K
    service: str
    target: str
    domain: D


NEEDS: dict[P, tuple[NeedTemplate, ...]] = {
    P.HEALTH_CARE: (
        NeedTemplate(D.PHYSICAL, "Heart failure with repeated episodes of fluid overload", E.COMPLEX_CONDITION),
        NeedTemplate(D.PHYSICAL, "Type 2 diabetes with HbA1c well above target"),
        NeedTemplate(D.PHYSICAL, "COPD with frequent exacerbations"),
        NeedTemplate(D.PHYSICAL, "Ten or more regular medicines, doses often missed"),
        NeedTemplate(D.PSYCHOLOGICAL, "Low mood and worry about health since the last admission"),
        NeedTemplate(D.PSYCHOLOGICAL, "Mild cognitive impairment affecting medicine routines"),
        NeedTemplate(D.SOCIAL, "Lives alone with little family support"),
        NeedTemplate(D.SOCIAL, "No reliable transport to appointments"),
        NeedTemplate(D.FUNCTIONAL, "Needs help with bathing and dressing", E.FRAILTY),
        NeedTemplate(D.FUNCTIONAL, "Unsteady on feet, two falls in six months", E.FRAILTY),
        NeedTemplate(D.FINANCIAL, "Cannot afford all prescribed medicines"),
        NeedTemplate(D.FINANCIAL, "Unsure of entitlement to benefits"),
    ),
    P.SOCIAL_WORK: (
        NeedTemplate(D.SOCIAL, "Without stable housing, staying in a night shelter", E.HOMELESSNESS),
        NeedTemplate(D.SOCIAL, "Facing eviction within 60 days", E.HOMELESSNESS),
        NeedTemplate(D.SOCIAL, "Socially isolated since moving to the area"),
        NeedTemplate(D.FINANCIAL, "No income since losing job", E.UNEMPLOYMENT),
        NeedTemplate(D.FINANCIAL, "Rent arrears and unpaid utility bills"),
        NeedTemplate(D.FINANCIAL, "Food insecurity: skips meals at the end of the month"),
        NeedTemplate(D.PSYCHOLOGICAL, "Anxiety related to the housing situation"),
        NeedTemplate(D.PSYCHOLOGICAL, "Harmful alcohol use", E.SUBSTANCE_USE),
        NeedTemplate(D.PHYSICAL, "Untreated dental pain"),
        NeedTemplate(D.PHYSICAL, "High blood pressure, not registered with a GP"),
        NeedTemplate(D.FUNCTIONAL, "No identity documents, cannot open a bank account"),
    ),
    P.REHABILITATION: (
        NeedTemplate(D.PHYSICAL, "Left-sided weakness after ischaemic stroke", E.DISABILITY),
        NeedTemplate(D.PHYSICAL, "Recovering from hip fracture repair", E.COMPLEX_CONDITION),
        NeedTemplate(D.PHYSICAL, "Below-knee amputation, awaiting prosthesis", E.DISABILITY),
        NeedTemplate(D.PHYSICAL, "Deconditioning after a long intensive-care stay", E.COMPLEX_CONDITION),
        NeedTemplate(D.FUNCTIONAL, "Needs help with transfers and stairs", E.DISABILITY),
        NeedTemplate(D.FUNCTIONAL, "Cannot yet prepare own meals"),
        NeedTemplate(D.FUNCTIONAL, "Unable to drive"),
        NeedTemplate(D.PSYCHOLOGICAL, "Frustration and low mood about loss of independence"),
        NeedTemplate(D.SOCIAL, "Only bathroom is upstairs"),
        NeedTemplate(D.SOCIAL, "Spouse is the main carer and is exhausted"),
        NeedTemplate(D.FINANCIAL, "Off work and worried about income"),
    ),
    P.CHILD_PROTECTION: (
        NeedTemplate(D.SOCIAL, "Child at risk of neglect: home conditions unsafe", E.CHILD_AT_RISK),
        NeedTemplate(D.SOCIAL, "Exposure to domestic violence in the household", E.CHILD_AT_RISK),
        NeedTemplate(D.SOCIAL, "Parent's substance use affects care of the child", E.CHILD_AT_RISK),
        NeedTemplate(D.PSYCHOLOGICAL, "Child shows anxiety and sleep problems"),
        NeedTemplate(D.PSYCHOLOGICAL, "Behavioural difficulties at school"),
        NeedTemplate(D.PHYSICAL, "Missed immunisations and health checks"),
        NeedTemplate(D.PHYSICAL, "Child underweight for age"),
        NeedTemplate(D.FUNCTIONAL, "School attendance below 80%"),
        NeedTemplate(D.FINANCIAL, "Household cannot cover basic needs"),
    ),
    P.BEHAVIOURAL_HEALTH: (
        NeedTemplate(D.PSYCHOLOGICAL, "Recurrent major depression with a recent crisis", E.COMPLEX_CONDITION),
        NeedTemplate(D.PSYCHOLOGICAL, "Schizophrenia, medication stopped", E.COMPLEX_CONDITION),
        NeedTemplate(D.PSYCHOLOGICAL, "Opioid use disorder", E.SUBSTANCE_USE),
        NeedTemplate(D.PSYCHOLOGICAL, "Alcohol use disorder with a history of withdrawal", E.SUBSTANCE_USE),
        NeedTemplate(D.PHYSICAL, "Weight gain and pre-diabetes on antipsychotic medication"),
        NeedTemplate(D.PHYSICAL, "Hepatitis C, untreated"),
        NeedTemplate(D.SOCIAL, "Strained relationship with family"),
        NeedTemplate(D.SOCIAL, "Unstable housing", E.HOMELESSNESS),
        NeedTemplate(D.FUNCTIONAL, "Difficulty keeping daily routines"),
        NeedTemplate(D.FINANCIAL, "Benefits suspended after a missed assessment"),
    ),
}

#: The reason a programme's cases always qualify under, when no finding or hospital use says more.
DEFAULT_ELIGIBILITY: dict[P, E] = {
    P.HEALTH_CARE: E.COMPLEX_CONDITION,
    P.SOCIAL_WORK: E.UNEMPLOYMENT,
    P.REHABILITATION: E.DISABILITY,
    P.CHILD_PROTECTION: E.CHILD_AT_RISK,
    P.BEHAVIOURAL_HEALTH: E.COMPLEX_CONDITION,
}

STRENGTHS: dict[P, tuple[str, ...]] = {
    P.HEALTH_CARE: (
        "Motivated to stay at home", "Helpful neighbour", "Keeps appointments when transport is arranged",
        "Already uses a pill organiser", "Understands own condition well", "Daughter visits weekly",
    ),
    P.SOCIAL_WORK: (
        "Engaged with shelter staff", "Work experience in retail", "Keen to find work", "Keeps appointments",
        "Reads and writes well", "Friend offers a sofa in emergencies",
    ),
    P.REHABILITATION: (
        "Highly motivated in therapy", "Supportive spouse", "Fully independent before the event",
        "Downstairs toilet at home", "Employer willing to adapt the role",
    ),
    P.CHILD_PROTECTION: (
        "Grandmother willing to help", "Close bond with class teacher", "Parent wants to keep the family together",
        "Child enjoys the sports club", "Parent attends all meetings",
    ),
    P.BEHAVIOURAL_HEALTH: (
        "Wants to return to work", "Engaged with a peer support worker", "Supportive sibling",
        "Recognises own early warning signs", "Stable period of two years in the past",
    ),
}  # fmt: skip

GOALS: dict[P, tuple[GoalTemplate, ...]] = {
    P.HEALTH_CARE: (
        GoalTemplate(D.PHYSICAL, "I will weigh myself every morning and call the nurse if I gain 2 kg in 3 days",
                     "weights logged daily", self_care=True),
        GoalTemplate(D.PHYSICAL, "I will take my medicines every day using the pill organiser",
                     "no missed doses in a month", self_care=True),
        GoalTemplate(D.FUNCTIONAL, "I want to walk to the end of the street and back every day",
                     "15 minutes walking daily", self_care=True),
        GoalTemplate(D.PHYSICAL, "Bring HbA1c below target", "HbA1c < 58 mmol/mol"),
        GoalTemplate(D.PHYSICAL, "No unplanned hospital admission for 90 days", "0 admissions in 90 days"),
        GoalTemplate(D.SOCIAL, "Attend all scheduled clinic appointments", "100% attendance"),
        GoalTemplate(D.FUNCTIONAL, "Home safety check done and fall-prevention aids fitted", "grab rails installed"),
        GoalTemplate(D.FINANCIAL, "Prescription cost support in place", "application approved"),
    ),
    P.SOCIAL_WORK: (
        GoalTemplate(D.SOCIAL, "Move into stable accommodation", "tenancy signed"),
        GoalTemplate(D.FINANCIAL, "Income support in payment", "first payment received"),
        GoalTemplate(D.FUNCTIONAL, "I will cook a hot meal at least four days a week", "4 days a week",
                     self_care=True),
        GoalTemplate(D.SOCIAL, "I will go to the job club every Tuesday", "weekly attendance", self_care=True),
        GoalTemplate(D.PHYSICAL, "Registered with a GP and health check done", "health check completed"),
        GoalTemplate(D.FINANCIAL, "I will keep a diary of my weekly spending", "diary kept for 8 weeks",
                     self_care=True),
        GoalTemplate(D.PSYCHOLOGICAL, "I want to drink on no more than two days a week",
                     "at most 2 drinking days a week", self_care=True),
    ),
    P.REHABILITATION: (
        GoalTemplate(D.FUNCTIONAL, "Walk 200 m unaided", "200 m without a walking aid"),
        GoalTemplate(D.PHYSICAL, "I will do my home exercise programme every day", "exercises logged daily",
                     self_care=True),
        GoalTemplate(D.FUNCTIONAL, "Climb the stairs at home safely with one rail", "one flight with one rail"),
        GoalTemplate(D.FUNCTIONAL, "I want to make my own lunch again", "prepares a light meal unaided",
                     self_care=True),
        GoalTemplate(D.FINANCIAL, "Return to work part-time", "2 days a week"),
        GoalTemplate(D.SOCIAL, "I want to get out into the garden every day", "outdoors daily", self_care=True),
        GoalTemplate(D.PSYCHOLOGICAL, "Mood screening score back in the normal range", "PHQ-9 below 5"),
    ),
    P.CHILD_PROTECTION: (
        GoalTemplate(D.SOCIAL, "Child lives in a safe home with an agreed safety plan", "safety plan reviewed monthly"),
        GoalTemplate(D.PHYSICAL, "Immunisations and health checks up to date", "schedule complete"),
        GoalTemplate(D.FUNCTIONAL, "School attendance above 95%", "attendance > 95% for a term"),
        GoalTemplate(D.PSYCHOLOGICAL, "I will tell my teacher or social worker when I feel unsafe",
                     "knows two trusted adults", self_care=True),
        GoalTemplate(D.SOCIAL, "I want to go to football club every week", "weekly attendance", self_care=True),
        GoalTemplate(D.SOCIAL, "Parent completes the parenting programme", "10 of 10 sessions"),
        GoalTemplate(D.FINANCIAL, "Household receives the benefits it is entitled to", "claims in payment"),
    ),
    P.BEHAVIOURAL_HEALTH: (
        GoalTemplate(D.PSYCHOLOGICAL, "I will take my medication every day with the reminder app", "no missed doses",
                     self_care=True),
        GoalTemplate(D.PSYCHOLOGICAL, "I will use my crisis plan and call the team early", "crisis plan used",
                     self_care=True),
        GoalTemplate(D.PSYCHOLOGICAL, "Stable on opioid substitution therapy", "12 weeks of negative screens"),
        GoalTemplate(D.SOCIAL, "I will go to the peer support group every week", "weekly attendance",
                     self_care=True),
        GoalTemplate(D.PHYSICAL, "Physical health checks every three months", "weight and glucose checked"),
        GoalTemplate(D.FINANCIAL, "Benefits reinstated", "payments resumed"),
        GoalTemplate(D.FUNCTIONAL, "I want a regular sleep routine", "in bed by midnight 6 nights a week",
                     self_care=True),
    ),
}  # fmt: skip

SERVICES: dict[P, tuple[ServiceTemplate, ...]] = {
    P.HEALTH_CARE: (
        ServiceTemplate(K.SPECIALIST, "Cardiology review of heart failure treatment", SPECIALIST, D.PHYSICAL),
        ServiceTemplate(K.HOME_HEALTH, "Community nursing for medicine management, 2 visits a week", HOME_HEALTH,
                        D.PHYSICAL),
        ServiceTemplate(K.TRANSPORT, "Transport to clinic appointments", TRANSPORT, D.SOCIAL),
        ServiceTemplate(K.SOCIAL_SERVICES, "Benefits and prescription-cost advice", BENEFITS, D.FINANCIAL),
        ServiceTemplate(K.FOOD, "Meals on wheels, 5 days a week", FOOD, D.FUNCTIONAL),
        ServiceTemplate(K.EDUCATION, "Diabetes self-management course", PRIMARY_CARE, D.PHYSICAL),
        ServiceTemplate(K.REHABILITATION, "Falls prevention and strength programme", THERAPY, D.FUNCTIONAL),
    ),
    P.SOCIAL_WORK: (
        ServiceTemplate(K.HOUSING, "Supported housing application", HOUSING, D.SOCIAL),
        ServiceTemplate(K.SOCIAL_SERVICES, "Help to claim income support", BENEFITS, D.FINANCIAL),
        ServiceTemplate(K.FOOD, "Food bank vouchers", FOOD, D.FINANCIAL),
        ServiceTemplate(K.EDUCATION, "Job club and CV workshop", EMPLOYMENT, D.FINANCIAL),
        ServiceTemplate(K.BEHAVIOURAL_HEALTH, "Alcohol brief intervention and counselling", RECOVERY, D.PSYCHOLOGICAL),
        ServiceTemplate(K.SPECIALIST, "Urgent dental treatment", SPECIALIST, D.PHYSICAL),
        ServiceTemplate(K.TRANSPORT, "Travel pass for appointments", TRANSPORT, D.SOCIAL),
    ),
    P.REHABILITATION: (
        ServiceTemplate(K.REHABILITATION, "Outpatient physiotherapy, twice a week", THERAPY, D.PHYSICAL),
        ServiceTemplate(K.REHABILITATION, "Occupational therapy home assessment", THERAPY, D.FUNCTIONAL),
        ServiceTemplate(K.HOME_HEALTH, "Home care for washing and dressing", HOME_HEALTH, D.FUNCTIONAL),
        ServiceTemplate(K.SPECIALIST, "Prosthetics clinic fitting", SPECIALIST, D.PHYSICAL),
        ServiceTemplate(K.SOCIAL_SERVICES, "Home adaptations grant for a stair lift", BENEFITS, D.SOCIAL),
        ServiceTemplate(K.TRANSPORT, "Accessible transport to therapy", TRANSPORT, D.FUNCTIONAL),
        ServiceTemplate(K.EDUCATION, "Vocational rehabilitation", EMPLOYMENT, D.FINANCIAL),
    ),
    P.CHILD_PROTECTION: (
        ServiceTemplate(K.SOCIAL_SERVICES, "Family support worker visits", FAMILY_SERVICES, D.SOCIAL),
        ServiceTemplate(K.BEHAVIOURAL_HEALTH, "Child and adolescent mental health assessment", BEHAVIOURAL_CLINIC,
                        D.PSYCHOLOGICAL),
        ServiceTemplate(K.EDUCATION, "Parenting programme (10 weeks)", FAMILY_SERVICES, D.SOCIAL),
        ServiceTemplate(K.SPECIALIST, "Paediatric review of growth and immunisations", SPECIALIST, D.PHYSICAL),
        ServiceTemplate(K.EDUCATION, "School attendance support", FAMILY_SERVICES, D.FUNCTIONAL),
        ServiceTemplate(K.BEHAVIOURAL_HEALTH, "Substance use treatment for the parent", RECOVERY, D.SOCIAL),
        ServiceTemplate(K.FOOD, "Emergency food parcels", FOOD, D.FINANCIAL),
    ),
    P.BEHAVIOURAL_HEALTH: (
        ServiceTemplate(K.BEHAVIOURAL_HEALTH, "Psychiatric outpatient review", BEHAVIOURAL_CLINIC, D.PSYCHOLOGICAL),
        ServiceTemplate(K.BEHAVIOURAL_HEALTH, "Opioid substitution therapy", RECOVERY, D.PSYCHOLOGICAL),
        ServiceTemplate(K.SOCIAL_SERVICES, "Welfare rights advice to reinstate benefits", BENEFITS, D.FINANCIAL),
        ServiceTemplate(K.HOUSING, "Supported housing", HOUSING, D.SOCIAL),
        ServiceTemplate(K.EDUCATION, "Individual placement and support into work", EMPLOYMENT, D.FUNCTIONAL),
        ServiceTemplate(K.SPECIALIST, "Hepatitis C treatment clinic", SPECIALIST, D.PHYSICAL),
        ServiceTemplate(K.SOCIAL_SERVICES, "Peer support worker", RECOVERY, D.SOCIAL),
    ),
}  # fmt: skip

#: Why a referral ended up rejected, cancelled, failed or on hold.
REFERRAL_REASONS: dict[str, tuple[str, ...]] = {
    "rejected": (
        "Outside the service area", "Does not meet the service's eligibility criteria", "Service at capacity",
        "Waiting list closed",
    ),
    "cancelled": (
        "Patient declined the service", "Need met by another service", "Patient moved out of the area",
        "Duplicate referral",
    ),
    "failed": ("Patient could not be reached", "Patient did not attend"),
    "on-hold": ("Patient in hospital", "Awaiting funding approval", "Patient asked to pause"),
}  # fmt: skip

CASE_ON_HOLD_REASONS = (
    "Patient away from the area", "Unable to reach the patient", "Patient asked for a pause",
)  # fmt: skip
#: Why a case closed. Each reason must fit what the journey did: "goals met" only after a goal was
#: achieved, "transferred to long-term care" only after a move into long-term care (and then always).
CLOSED_GOALS_MET = "Goals met; discharged from case management"
CLOSED_TO_LONG_TERM_CARE = "Transferred to long-term care"
CASE_CLOSED_REASONS = (
    "Stable; stepped down to primary care", "Patient moved out of the area",
    "Patient declined further case management",
)  # fmt: skip

CONTACT_NOTES: dict[str, tuple[str, ...]] = {
    "face-to-face": (
        "Home visit: reviewed the plan and medicines", "Clinic visit: progress on goals reviewed",
        "Joint visit with the carer", "Reassessment of needs",
    ),
    "phone": ("Check-in call, no new concerns", "Call about upcoming appointments", "Reviewed barriers to the plan"),
    "video": ("Video review of goals", "Video call with patient and family"),
    "message": ("Reminder of next appointment sent", "Message: asked how the new service is going"),
}  # fmt: skip
