"""The ``fhir-cm`` command spaces the cycle collector's passes out; the library alone leaves them be."""

from __future__ import annotations

import subprocess
import sys

from fhir_cm.process import YOUNG_COLLECTION_EVERY

PROBE = """
import gc, sys
before = gc.get_threshold()[0]
import fhir_cm.cli as cli
imported = gc.get_threshold()[0]
sys.argv = ["fhir-cm", "--version"]
try:
    cli.main()
except SystemExit:
    pass
print(before, imported, gc.get_threshold()[0])
"""


def test_the_command_sets_the_young_generation_threshold_and_importing_does_not() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout
    before, imported, running = map(int, out.split()[-3:])
    assert before == imported != YOUNG_COLLECTION_EVERY
    assert running == YOUNG_COLLECTION_EVERY
