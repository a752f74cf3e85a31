"""fhir-cm: case management over FHIR.

Cases, assessments, care plans, goals, referrals, care teams and transitions between care settings,
mapped onto standard FHIR resources (R4 and R5) and synced with any FHIR server.
"""

__version__ = "0.1.0"
