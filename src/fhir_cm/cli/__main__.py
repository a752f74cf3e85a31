"""``python -m fhir_cm.cli``: the same as the ``fhir-cm`` command."""

from . import main

main()
