"""The machinery every resource module is built from: a resource is a table of fields.

A :class:`Field` knows one domain value, where it lives in a FHIR JSON object, how to read it back
and how to write it. A :class:`Shape` is a tuple of fields over one JSON object (a resource, or an
item such as a CareTeam participant). The same table then serves three jobs:

- ``write``: build a fresh object from the domain;
- ``merge``: start from a base copy and write only the fields whose value differs from what the
  base already says — everything else in the base (extensions, narrative, other systems' codings,
  unknown elements) is never touched;
- ``read``: the domain values an object holds (what cannot be read is simply not returned).

Writers are themselves careful with lists: an item the domain does not own (a foreign coding, an
extension of another URL, a reference to something outside the case) keeps its place.
"""

from ._codes import code, codings_at, concept, concept_items, extension_item, extension_items
from ._core import Ctx, Field, ResourceSpec, Shape, attr, date, items, text
from ._links import model_items, party, party_item, ref, refs

__all__ = [
    "Ctx",
    "Field",
    "ResourceSpec",
    "Shape",
    "attr",
    "code",
    "codings_at",
    "concept",
    "concept_items",
    "date",
    "extension_item",
    "extension_items",
    "items",
    "model_items",
    "party",
    "party_item",
    "ref",
    "refs",
    "text",
]
