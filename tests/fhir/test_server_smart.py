"""SMART Backend Services against an independent implementation: sekmet-fhir's token endpoint.

The respx token endpoint in ``test_fhir_auth.py`` checks our assertion by our reading of the spec;
this one lets another implementation judge it, over real HTTP, with discovery from
``.well-known/smart-configuration`` and a server that refuses requests without a valid token.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from fhir_cm.config import Settings
from fhir_cm.fhir import AsyncFhirClient, Unauthorized, client_from_settings
from tests.servers import RunningServer, sekmet_server

pytestmark = pytest.mark.server

CLIENT_ID = "fhir-cm-it"


def _write_keys(directory: Path, alg: str) -> tuple[Path, Path]:
    private = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if alg == "RS384"
        else (ec.generate_private_key(ec.SECP384R1()))
    )
    private_file, public_file = directory / f"{alg}.pem", directory / f"{alg}.pub.pem"
    private_file.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    public_file.write_bytes(
        private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return private_file, public_file


@pytest.fixture(scope="module")
def smart_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, dict[str, Path]]]:
    """A second server that only accepts SMART tokens, with one client per algorithm registered."""
    from sekmet.config import ServerAuth, SmartClient

    workdir = tmp_path_factory.mktemp("smart-server")
    keys = {alg: _write_keys(workdir, alg) for alg in ("RS384", "ES384")}
    clients = [
        SmartClient(client_id=f"{CLIENT_ID}-{alg}", public_key_path=str(pub), scopes="system/*.*")
        for alg, (_, pub) in keys.items()
    ]
    with sekmet_server(workdir, server_auth=ServerAuth(types=["smart"], smart_clients=clients)) as server:
        yield server, {alg: private for alg, (private, _) in keys.items()}


@pytest.mark.parametrize("alg", ["RS384", "ES384"])
async def test_backend_services_token_is_accepted_by_an_independent_server(
    smart_server: tuple[RunningServer, dict[str, Path]], alg: str
) -> None:
    server, private_keys = smart_server
    settings = Settings(
        fhir_base=server.base_url,
        auth="smart",
        client_id=f"{CLIENT_ID}-{alg}",
        private_key_file=str(private_keys[alg]),
        private_key_alg=alg,
        key_id=f"{alg}-1",
    )

    async with client_from_settings(settings) as fhir:  # token_url discovered
        made = await fhir.create({"resourceType": "Patient", "active": True})
        assert made.created
        assert (await fhir.read("Patient", made.id or ""))["active"] is True


async def test_the_server_really_requires_the_token(smart_server: tuple[RunningServer, dict[str, Path]]) -> None:
    server, _ = smart_server

    async with AsyncFhirClient(server.base_url) as anonymous:
        with pytest.raises(Unauthorized):
            await anonymous.create({"resourceType": "Patient"})
