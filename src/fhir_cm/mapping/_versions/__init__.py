"""FHIR R4 ⇄ R5 conversion of plain resource dicts (what ``export --fhir-version`` uses).

Independent of the domain mapping: it knows FHIR versions, not cases. See ``_convert.py`` for how
it works and ``mappings/r4-r5-elements.json`` for the renames and code changes it applies.
"""

from ._convert import convert_resource
from ._errors import UnrepresentableElementError, UnsupportedResourceError, VersionConversionError
from ._schema import Elem, FhirVersion, element_map, model_class

__all__ = [
    "Elem",
    "FhirVersion",
    "UnrepresentableElementError",
    "UnsupportedResourceError",
    "VersionConversionError",
    "convert_resource",
    "element_map",
    "model_class",
]
