"""A server's heap settled after start-up, so that garbage collection does not stall requests.

CPython's cyclic collector walks every tracked object on a full collection. A serving process holds
hundreds of thousands of long-lived ones — the FHIR façade's index, the decoded cases its read routes
keep — and a full walk over them pauses every request for a tenth of a second or more, which is the
whole of the API's slowest percentile. Once the start-up work is done, ``settle`` collects what is
garbage and moves everything still alive into the permanent generation (``gc.freeze``), which the
collector no longer walks: later collections see only what requests create. Objects frozen stay
reference-counted, so a frozen case dropped from a cache is still freed.

Only ``fhir-cm serve`` settles its heap (``create_app(..., serving=True)``): a test process creating
many apps would keep each app's cyclic garbage.
"""

from __future__ import annotations

import gc

__all__ = ["settle"]


def settle() -> None:
    """Collect, then freeze what survived."""
    gc.collect()
    gc.freeze()
