"""Validating a resource with its fhir.resources model, past the one valid thing that model refuses.

FHIR lets an Extension's primitive value carry its own id and extensions, as every primitive may:
``{"url": …, "valueString": "…", "_valueString": {"extension": [a translation]}}``. fhir.resources'
Extension model has no ``_valueX`` fields, so it refuses such an extension as an extra input — and
with it the whole resource: an import stopped, a pull quarantined what a server sent, and an R5
export whose cross-version extensions carry an element's own extensions could not be read back.

:func:`validate` takes those siblings out of the copy the model sees and checks each one as the
Element it is (an ``id`` and ``extension``), so they are held to the same rules; the resource
itself, which is what is kept, is never changed. The walk that finds them costs more than a
sixth of the check on a pull's resources, none of which has one, so it runs only where the
resource's JSON holds ``"_value`` (writing it out takes a fraction of the walk).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from typing import Any

from .. import decimals

__all__ = ["validate"]

_VALUE_SIBLING = re.compile(r"_value[A-Z][A-Za-z0-9]*")
_EXTENSION_KEYS = ("extension", "modifierExtension")


def validate(model: type[Any], resource: Mapping[str, Any]) -> Any:
    """``model.model_validate(resource)``, accepting ``_valueX`` in extensions (see the module).

    Raises what ``model_validate`` raises; a ``_valueX`` that is no Element fails as its own
    ValidationError.
    """
    siblings: list[Any] = []
    seen = _without_siblings(resource, siblings) if _may_have_siblings(resource) else resource
    result = model.model_validate(seen)
    if siblings:
        element = importlib.import_module(model.__module__.rsplit(".", 1)[0] + ".element").Element
        for sibling in siblings:
            element.model_validate(sibling)
    return result


def _may_have_siblings(resource: Mapping[str, Any]) -> bool:
    """Whether ``resource`` may hold a ``_valueX`` key: its JSON holds the text ``"_value``. A
    resource that cannot be written out (a value that is no JSON) is walked, and refused there."""
    try:
        return b'"_value' in decimals.dumps(resource)
    except TypeError:
        return True


def _without_siblings(value: Any, siblings: list[Any], in_extension: bool = False) -> Any:
    """``value`` with the ``_valueX`` of every extension in it moved to ``siblings`` (themselves
    without theirs); ``value`` itself when it has none, so that most resources are not copied."""
    if isinstance(value, Mapping):
        pairs = list(value.items())
        out: dict[str, Any] | None = None
        for n, (key, item) in enumerate(pairs):
            gone = in_extension and _VALUE_SIBLING.fullmatch(key) is not None
            if gone:
                siblings.append(_without_siblings(item, siblings))
                new = None
            else:
                new = _without_siblings(item, siblings, key in _EXTENSION_KEYS)
            if out is None and (gone or new is not item):
                out = dict(pairs[:n])
            if out is not None and not gone:
                out[key] = new
        return value if out is None else out
    if isinstance(value, list):
        items = [_without_siblings(item, siblings, in_extension) for item in value]
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    return value
