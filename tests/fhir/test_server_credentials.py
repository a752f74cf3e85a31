"""A static bearer token as operators supply it, judged by a real server over real HTTP.

respx replaces the HTTP layer, so a header the HTTP library would refuse to send never fails there;
these tests go through it, to sekmet-fhir guarding its FHIR API with a bearer token.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fhir_cm.config import Settings
from fhir_cm.fhir import client_from_settings
from tests.servers import RunningServer, sekmet_server

pytestmark = pytest.mark.server

TOKEN = "Zm9vYmFy.s3cret-token_for-fhir-cm"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A server that takes one static bearer token."""
    from sekmet.config import ServerAuth

    auth = ServerAuth(types=["bearer"], tokens=[TOKEN])
    with sekmet_server(tmp_path_factory.mktemp("guarded"), server_auth=auth) as server:
        yield server


@pytest.mark.parametrize("written", [f"{TOKEN}\n", f"{TOKEN}\r\n", f"  {TOKEN} "], ids=["lf", "crlf", "spaces"])
async def test_a_token_with_the_line_end_of_an_env_file_is_sent_without_it(
    guarded: RunningServer, written: str
) -> None:
    # `FHIR_CM_TOKEN` read from a secret mounted as a file, or an env file edited by hand, ends in a newline:
    # sent as is, the HTTP library refused the header and every request failed as a "network error".
    settings = Settings(fhir_base=guarded.base_url, auth="bearer", token=written)

    async with client_from_settings(settings) as fhir:
        made = await fhir.create({"resourceType": "Patient", "active": True})

    assert made.created


def test_a_token_with_a_space_inside_is_refused_at_start_naming_the_setting_not_the_token() -> None:
    settings = Settings(fhir_base="https://fhir.example.org/r4", auth="bearer", token="Bearer " + TOKEN)

    with pytest.raises(ValueError, match="FHIR_CM_TOKEN: the bearer token holds a space") as refused:
        client_from_settings(settings)

    assert TOKEN not in str(refused.value)
