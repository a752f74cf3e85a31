"""A stop (SIGTERM, Ctrl-C) that lands inside a library which wraps what it was interrupted with.

Python raises ``KeyboardInterrupt`` wherever the main thread is when the signal is handled. pydantic's
serialiser, when that is in it (an enum's value, read in Python, as it writes a case), turns it into a
``PydanticSerializationError`` naming it; orjson's ``default`` into a ``TypeError`` caused by it.
``fhir-cm generate`` stopped so (one stop in ten) printed that error's traceback and exited 1, or
``fhir-cm: error: Error serializing to JSON: KeyboardInterrupt`` where a command reports value errors.
Here a command of the real entry point sends the signal to its own process from inside the library,
so it lands there every time."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs POSIX signals")

SCRIPT = """
import os, signal
import orjson, typer
from pydantic import BaseModel, field_serializer
import fhir_cm.cli as cli
from fhir_cm.cli import reported


def stop():
    os.kill(os.getpid(), signal.{signal})
    for _ in range(100_000):  # the handler runs here, in the library's call
        pass


class Row(BaseModel):
    n: int

    @field_serializer("n")
    def _n(self, n):
        stop()
        return n


tiny = typer.Typer(pretty_exceptions_enable=False)  # as fhir-cm's own


@tiny.command()
def write():
    {body}


cli.app = tiny
cli.main()
"""

BODIES = {
    "pydantic": "Row(n=1).model_dump_json()",
    "pydantic-reported": "with reported(ValueError):\n        Row(n=1).model_dump_json()",
    "orjson": "orjson.dumps(object(), default=lambda o: stop())",
}


@pytest.mark.parametrize("where", list(BODIES))
@pytest.mark.parametrize(
    ("signal", "code", "said"),
    [("SIGTERM", 143, "fhir-cm: terminated\n"), ("SIGINT", 130, "fhir-cm: interrupted\n")],
    ids=["SIGTERM", "Ctrl-C"],
)
def test_a_stop_inside_a_library_that_wraps_it_stops_the_command_with_its_line_and_code(
    where: str, signal: str, code: int, said: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(signal=signal, body=BODIES[where])],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stderr) == (code, said)
