"""Auth: bearer, basic and SMART Backend Services against a token endpoint that checks everything."""

from __future__ import annotations

import asyncio
import base64
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import httpx
import jwt
import pytest
import respx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from fhir_cm.config import Settings
from fhir_cm.fhir._scopes import left_out
from fhir_cm.fhir import (
    NO_RETRY,
    AsyncFhirClient,
    BearerAuth,
    RetryPolicy,
    SmartBackendAuth,
    TransientError,
    Unauthorized,
    auth_from_settings,
    client_from_settings,
)

from .conftest import BASE, Hapi, Sleeps

TOKEN_URL = "https://auth.example.org/oauth2/token"
CLIENT_ID = "fhir-cm-backend"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass
class KeyPair:
    alg: str
    private_pem: bytes
    public_key: Any


def _pem(key: Any) -> bytes:
    return key.private_bytes(  # type: ignore[no-any-return]
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.fixture(scope="module", params=["RS384", "ES384"])
def keys(request: pytest.FixtureRequest) -> KeyPair:
    private = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if request.param == "RS384"
        else (ec.generate_private_key(ec.SECP384R1()))
    )
    return KeyPair(request.param, _pem(private), private.public_key())


class FakeClock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@dataclass
class TokenEndpoint:
    """A SMART token endpoint: verifies the client assertion with the registered public key."""

    keys: KeyPair
    clock: Callable[[], float]
    lifetime: int = 300
    issued: list[str] = field(default_factory=list)
    jtis: set[str] = field(default_factory=set)
    refuse: bool = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        assert form["grant_type"] == "client_credentials"
        assert form["client_assertion_type"] == ASSERTION_TYPE
        assert form["scope"] == "system/*.read system/*.write"
        if self.refuse:
            return httpx.Response(401, json={"error": "invalid_client", "error_description": "unknown key"})
        assertion = form["client_assertion"]
        header = jwt.get_unverified_header(assertion)
        assert (header["alg"], header["kid"], header["typ"]) == (self.keys.alg, "key-2025", "JWT")
        claims = jwt.decode(  # raises unless the signature matches the registered public key
            assertion,
            self.keys.public_key,
            algorithms=[self.keys.alg],
            audience=TOKEN_URL,
            options={"require": ["iss", "sub", "aud", "exp", "jti"], "verify_exp": False, "verify_iat": False},
        )
        assert claims["iss"] == claims["sub"] == CLIENT_ID
        assert self.clock() < claims["exp"] <= self.clock() + 300
        assert claims["jti"] not in self.jtis, "jti reused"
        self.jtis.add(claims["jti"])
        token = f"token-{len(self.issued) + 1}"
        self.issued.append(token)
        return httpx.Response(
            200,
            json={"access_token": token, "token_type": "bearer", "expires_in": self.lifetime, "scope": form["scope"]},
        )


def smart(keys: KeyPair, clock: Callable[[], float], token_url: str | None = TOKEN_URL) -> SmartBackendAuth:
    return SmartBackendAuth(
        client_id=CLIENT_ID,
        private_key=keys.private_pem,
        fhir_base=BASE,
        algorithm=keys.alg,  # type: ignore[arg-type]
        key_id="key-2025",
        token_url=token_url,
        clock=clock,
    )


def fhir_route(router: respx.MockRouter, path: str, body: dict[str, Any], valid: Callable[[], set[str]]) -> respx.Route:
    """A FHIR route accepting only tokens in ``valid()``; anything else gets 401."""

    def handler(request: httpx.Request) -> httpx.Response:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Bearer" or token not in valid():
            return httpx.Response(
                401, json={"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "login"}]}
            )
        return httpx.Response(200, json=body)

    return router.get(f"{BASE}/{path}").mock(side_effect=handler)


async def test_token_is_fetched_once_and_used(router: respx.MockRouter, keys: KeyPair) -> None:
    clock = FakeClock()
    endpoint = TokenEndpoint(keys, clock)
    token_route = router.post(TOKEN_URL).mock(side_effect=endpoint)
    read = fhir_route(router, "CarePlan/1", {"resourceType": "CarePlan", "id": "1"}, lambda: set(endpoint.issued))

    async with AsyncFhirClient(BASE, auth=smart(keys, clock)) as fhir:
        await fhir.read("CarePlan", "1")
        await fhir.read("CarePlan", "1")

    assert token_route.call_count == 1 and read.call_count == 2
    assert {c.request.headers["Authorization"] for c in read.calls} == {"Bearer token-1"}


async def test_concurrent_requests_share_one_token_request(router: respx.MockRouter, keys: KeyPair) -> None:
    clock = FakeClock()
    endpoint = TokenEndpoint(keys, clock)
    token_route = router.post(TOKEN_URL).mock(side_effect=endpoint)
    fhir_route(router, "Goal/1", {"resourceType": "Goal", "id": "1"}, lambda: set(endpoint.issued))

    async with AsyncFhirClient(BASE, auth=smart(keys, clock)) as fhir:
        await asyncio.gather(*(fhir.read("Goal", "1") for _ in range(5)))

    assert token_route.call_count == 1


async def test_token_is_refreshed_before_it_expires(router: respx.MockRouter, keys: KeyPair) -> None:
    clock = FakeClock()
    endpoint = TokenEndpoint(keys, clock, lifetime=300)
    router.post(TOKEN_URL).mock(side_effect=endpoint)
    read = fhir_route(router, "Task/1", {"resourceType": "Task", "id": "1"}, lambda: set(endpoint.issued))

    async with AsyncFhirClient(BASE, auth=smart(keys, clock)) as fhir:
        await fhir.read("Task", "1")
        clock.now += 230  # 70 s left: still outside the 60 s refresh margin
        await fhir.read("Task", "1")
        clock.now += 20  # 50 s left: refresh now rather than risk a 401
        await fhir.read("Task", "1")

    assert [c.request.headers["Authorization"] for c in read.calls] == [
        "Bearer token-1",
        "Bearer token-1",
        "Bearer token-2",
    ]
    assert len(endpoint.jtis) == 2


async def test_a_401_mid_paging_refreshes_the_token_and_resumes_the_same_page(
    router: respx.MockRouter, keys: KeyPair, hapi: Hapi
) -> None:
    clock = FakeClock()
    endpoint = TokenEndpoint(keys, clock)
    router.post(TOKEN_URL).mock(side_effect=endpoint)
    revoked: set[str] = set()

    def valid() -> set[str]:
        return set(endpoint.issued) - revoked

    first = router.get(f"{BASE}/CarePlan").mock(return_value=hapi.response("search-careplan-getpages-page1"))
    page2 = router.get(BASE, params={"_getpagesoffset": "2"})

    def page2_handler(request: httpx.Request) -> httpx.Response:
        if request.headers["Authorization"].removeprefix("Bearer ") not in valid():
            return httpx.Response(401)
        return hapi.response("search-careplan-getpages-page3")

    page2.mock(side_effect=page2_handler)

    ids = []
    async with AsyncFhirClient(BASE, auth=smart(keys, clock)) as fhir:
        async for cp in fhir.search("CarePlan"):
            ids.append(cp["id"])
            if len(ids) == 2:
                revoked.add("token-1")  # the server revokes the token between pages

    assert ids == ["1924561", "1924562", "1924565"]
    assert first.call_count == 1
    assert [c.request.headers["Authorization"] for c in page2.calls] == ["Bearer token-1", "Bearer token-2"]
    assert page2.calls[0].request.url == page2.calls[1].request.url  # resumed from the saved next link


async def test_a_second_401_is_not_retried_again(router: respx.MockRouter, keys: KeyPair) -> None:
    clock = FakeClock()
    endpoint = TokenEndpoint(keys, clock)
    token_route = router.post(TOKEN_URL).mock(side_effect=endpoint)
    read = fhir_route(router, "Task/1", {"resourceType": "Task", "id": "1"}, set)

    async with AsyncFhirClient(BASE, auth=smart(keys, clock)) as fhir:
        with pytest.raises(Unauthorized):
            await fhir.read("Task", "1")

    assert (token_route.call_count, read.call_count) == (2, 2)


async def test_token_endpoint_is_discovered_from_smart_configuration(router: respx.MockRouter, keys: KeyPair) -> None:
    clock = FakeClock()
    endpoint = TokenEndpoint(keys, clock)
    well_known = router.get(f"{BASE}/.well-known/smart-configuration").respond(
        json={"token_endpoint": TOKEN_URL, "token_endpoint_auth_methods_supported": ["private_key_jwt"]}
    )
    router.post(TOKEN_URL).mock(side_effect=endpoint)
    fhir_route(router, "Goal/1", {"resourceType": "Goal", "id": "1"}, lambda: set(endpoint.issued))

    auth = smart(keys, clock, token_url=None)
    async with AsyncFhirClient(BASE, auth=auth) as fhir:
        await fhir.read("Goal", "1")

    assert well_known.call_count == 1 and endpoint.issued == ["token-1"]


async def test_token_endpoint_falls_back_to_the_capability_statement(router: respx.MockRouter, keys: KeyPair) -> None:
    clock = FakeClock()
    endpoint = TokenEndpoint(keys, clock)
    router.get(f"{BASE}/.well-known/smart-configuration").respond(404)
    router.get(f"{BASE}/metadata").respond(
        json={
            "resourceType": "CapabilityStatement",
            "fhirVersion": "4.0.1",
            "rest": [
                {
                    "mode": "server",
                    "security": {
                        "extension": [
                            {
                                "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                                "extension": [{"url": "token", "valueUri": TOKEN_URL}],
                            }
                        ]
                    },
                }
            ],
        }
    )
    router.post(TOKEN_URL).mock(side_effect=endpoint)
    fhir_route(router, "Goal/1", {"resourceType": "Goal", "id": "1"}, lambda: set(endpoint.issued))

    async with AsyncFhirClient(BASE, auth=smart(keys, clock, token_url=None)) as fhir:
        await fhir.read("Goal", "1")

    assert endpoint.issued == ["token-1"]


async def test_a_discovered_token_endpoint_in_clear_is_refused_before_any_assertion_goes(
    router: respx.MockRouter, keys: KeyPair
) -> None:
    """A server naming an http:// token endpoint elsewhere would have the assertion and the token cross in clear."""
    clock = FakeClock()
    plain = "http://auth.example.org/token"
    router.get(f"{BASE}/.well-known/smart-configuration").respond(json={"token_endpoint": plain})
    token_route = router.post(plain).mock(side_effect=TokenEndpoint(keys, clock))
    read = router.get(f"{BASE}/Goal/1").respond(json={"resourceType": "Goal", "id": "1"})

    async with AsyncFhirClient(BASE, auth=smart(keys, clock, token_url=None)) as fhir:
        with pytest.raises(Unauthorized, match="not https"):
            await fhir.read("Goal", "1")

    assert token_route.call_count == 0 and read.call_count == 0


async def test_a_refused_client_is_unauthorized_and_nothing_reaches_the_server(
    router: respx.MockRouter, keys: KeyPair
) -> None:
    clock = FakeClock()
    router.post(TOKEN_URL).mock(side_effect=TokenEndpoint(keys, clock, refuse=True))
    read = router.get(f"{BASE}/Goal/1").respond(json={"resourceType": "Goal", "id": "1"})

    async with AsyncFhirClient(BASE, auth=smart(keys, clock)) as fhir:
        with pytest.raises(Unauthorized) as caught:
            await fhir.read("Goal", "1")

    assert "invalid_client" in str(caught.value) and "eyJ" not in str(caught.value)  # no assertion echoed
    assert read.call_count == 0


async def test_an_unavailable_token_endpoint_is_transient_and_retried_for_reads(
    router: respx.MockRouter, keys: KeyPair, sleeps: Sleeps
) -> None:
    token_route = router.post(TOKEN_URL).respond(503)

    async with AsyncFhirClient(
        BASE, auth=smart(keys, FakeClock()), retry=RetryPolicy(max_attempts=2), sleep=sleeps
    ) as fhir:
        with pytest.raises(TransientError, match="token endpoint unavailable"):
            await fhir.read("Goal", "1")

    assert token_route.call_count == 2 and len(sleeps.calls) == 1


async def test_bearer_and_basic(router: respx.MockRouter) -> None:
    route = router.get(f"{BASE}/Goal/1").respond(json={"resourceType": "Goal", "id": "1"})

    async with AsyncFhirClient(BASE, auth=BearerAuth("s3cret")) as fhir:
        await fhir.read("Goal", "1")
    async with AsyncFhirClient(BASE, auth=httpx.BasicAuth("ann", "pw")) as fhir:
        await fhir.read("Goal", "1")

    assert [c.request.headers["Authorization"] for c in route.calls] == [
        "Bearer s3cret",
        "Basic " + base64.b64encode(b"ann:pw").decode(),
    ]
    assert "s3cret" not in repr(BearerAuth("s3cret"))


def test_auth_from_settings(tmp_path: Any, keys: KeyPair) -> None:
    key_file = tmp_path / "key.pem"
    key_file.write_bytes(keys.private_pem)

    assert auth_from_settings(Settings(auth="none")) is None
    assert isinstance(auth_from_settings(Settings(auth="bearer", token="t")), BearerAuth)
    assert isinstance(auth_from_settings(Settings(auth="basic", username="u", password="p")), httpx.BasicAuth)
    smart_settings = Settings(
        auth="smart",
        client_id="c",
        private_key_file=str(key_file),
        fhir_base=BASE,
        private_key_alg=keys.alg,
        key_id="k",
    )
    made = auth_from_settings(smart_settings)
    assert isinstance(made, SmartBackendAuth) and made.algorithm == keys.alg
    with pytest.raises(ValueError, match="FHIR_CM_TOKEN_URL must be https"):  # the assertion would cross in clear
        auth_from_settings(smart_settings.model_copy(update={"token_url": "http://auth.example.org/token"}))
    vouched = smart_settings.model_copy(
        update={"token_url": "http://auth.internal/token", "allow_http_credentials": True}
    )
    assert isinstance(auth_from_settings(vouched), SmartBackendAuth)
    with pytest.raises(ValueError, match="FHIR_CM_TOKEN"):
        auth_from_settings(Settings(auth="bearer"))
    with pytest.raises(ValueError, match="FHIR_CM_PASSWORD"):
        auth_from_settings(Settings(auth="basic", username="u"))
    with pytest.raises(ValueError, match="FHIR_CM_PRIVATE_KEY_FILE"):
        auth_from_settings(Settings(auth="smart", client_id="c", fhir_base=BASE))


@pytest.mark.parametrize(
    "settings",
    [
        Settings(fhir_base="http://fhir.hospital.example/fhir", auth="bearer", token="t"),
        Settings(fhir_base="http://fhir.hospital.example/fhir", auth="basic", username="u", password="p"),
        Settings(fhir_base="http://localhost.example.org/fhir", auth="bearer", token="t"),
    ],
    ids=["bearer", "basic", "looks-local"],
)
def test_credentials_to_an_http_base_on_another_machine_are_refused(settings: Settings) -> None:
    with pytest.raises(ValueError, match="unencrypted: FHIR_CM_FHIR_BASE must be https") as refused:
        client_from_settings(settings)
    assert "FHIR_CM_ALLOW_HTTP_CREDENTIALS=true" in str(refused.value)  # the way out, named


async def test_an_operator_vouching_for_a_private_network_may_send_credentials_over_http() -> None:
    # A server reached inside a cluster or a VPN: refused by default, taken when the operator says so.
    bearer = Settings(fhir_base="http://hapi.internal:8080/fhir", auth="bearer", token="t", allow_http_credentials=True)
    async with client_from_settings(bearer) as fhir:
        assert fhir.base_url.startswith("http://hapi.internal")


async def test_credentials_over_http_to_this_machine_and_none_over_http_anywhere_are_accepted() -> None:
    async with (
        client_from_settings(Settings(fhir_base="http://127.0.0.1:8080/fhir", auth="bearer", token="t")) as local,
        client_from_settings(Settings(fhir_base="http://fhir.hospital.example/fhir")) as anonymous,
    ):
        assert local.base_url.startswith("http://127.0.0.1") and anonymous.base_url.startswith("http://fhir.")


def test_smart_auth_needs_the_async_client(keys: KeyPair) -> None:
    with pytest.raises(RuntimeError, match="async"):
        next(smart(keys, FakeClock()).sync_auth_flow(httpx.Request("GET", BASE)))


def _key_file(tmp_path: Any, name: str, key: Any, password: bytes | None = None) -> str:
    encryption = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    path = tmp_path / name
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption))
    return str(path)


def _smart_settings(key_file: str, alg: str, **more: Any) -> Settings:
    return Settings(auth="smart", client_id="c", private_key_file=key_file, private_key_alg=alg, fhir_base=BASE, **more)


@pytest.mark.parametrize(
    ("alg", "make", "said"),
    [
        ("ES384", lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048), "is an RSA key: ES384"),
        ("RS384", lambda: ec.generate_private_key(ec.SECP384R1()), "PRIVATE_KEY_ALG=ES384 signs with it"),
        ("ES384", lambda: ec.generate_private_key(ec.SECP256R1()), "on secp256r1: ES384 signs with an EC key on P-384"),
    ],
    ids=["rsa-for-es384", "p384-for-rs384", "p256-for-es384"],
)
def test_a_key_that_cannot_sign_with_the_algorithm_is_refused_at_start(
    tmp_path: Any, alg: str, make: Callable[[], Any], said: str
) -> None:
    # It was taken, and the first token request failed deep in the signing library ("Expecting a
    # PEM-formatted key.") or with the server's invalid_client, whatever the worker was doing.
    settings = _smart_settings(_key_file(tmp_path, "key.pem", make()), alg)

    with pytest.raises(ValueError, match="FHIR_CM_PRIVATE_KEY_FILE") as refused:
        auth_from_settings(settings)

    assert said in str(refused.value)


def test_an_encrypted_key_is_read_with_its_passphrase_and_refused_clearly_without(tmp_path: Any) -> None:
    private = ec.generate_private_key(ec.SECP384R1())
    key_file = _key_file(tmp_path, "encrypted.pem", private, password=b"s3cret phrase")

    with pytest.raises(ValueError, match="is encrypted: give its passphrase in FHIR_CM_PRIVATE_KEY_PASSWORD"):
        auth_from_settings(_smart_settings(key_file, "ES384"))  # was a TypeError, not reported as a setting
    with pytest.raises(ValueError, match="could not be decrypted") as wrong:
        auth_from_settings(_smart_settings(key_file, "ES384", private_key_password="not it"))
    assert "not it" not in str(wrong.value)

    made = auth_from_settings(_smart_settings(key_file, "ES384", private_key_password="s3cret phrase"))
    assert isinstance(made, SmartBackendAuth)
    assertion = made.client_assertion(TOKEN_URL)
    assert jwt.decode(assertion, private.public_key(), algorithms=["ES384"], audience=TOKEN_URL)["iss"] == "c"


def test_a_public_key_or_a_jwk_in_place_of_the_private_key_is_refused_at_start(tmp_path: Any) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = tmp_path / "public.pem"
    public.write_bytes(
        private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    jwk = tmp_path / "key.jwk"
    jwk.write_text('{"kty": "RSA", "n": "...", "e": "AQAB", "d": "..."}')

    with pytest.raises(ValueError, match=r"FHIR_CM_PRIVATE_KEY_FILE \(.*public.pem\): .* holds no private key"):
        auth_from_settings(_smart_settings(str(public), "RS384"))
    with pytest.raises(ValueError, match="is not PEM"):
        auth_from_settings(_smart_settings(str(jwk), "RS384"))


@pytest.mark.parametrize("status", [503, 429])
async def test_a_server_unavailable_during_discovery_is_transient_not_a_missing_token_endpoint(
    router: respx.MockRouter, keys: KeyPair, sleeps: Sleeps, status: int
) -> None:
    # A server restarting as the worker starts: taken as "no SMART token endpoint" (Unauthorized), every
    # case of the push failed for good, waiting for a person. It is retried, and discovered once back.
    clock = FakeClock()
    endpoint = TokenEndpoint(keys, clock)
    well_known = router.get(f"{BASE}/.well-known/smart-configuration")
    well_known.side_effect = [httpx.Response(status), httpx.Response(200, json={"token_endpoint": TOKEN_URL})]
    metadata = router.get(f"{BASE}/metadata").respond(status)
    router.post(TOKEN_URL).mock(side_effect=endpoint)
    read = fhir_route(router, "Goal/1", {"resourceType": "Goal", "id": "1"}, lambda: set(endpoint.issued))

    async with AsyncFhirClient(
        BASE, auth=smart(keys, clock, token_url=None), retry=RetryPolicy(max_attempts=2), sleep=sleeps
    ) as fhir:
        assert (await fhir.read("Goal", "1"))["id"] == "1"

    assert (well_known.call_count, metadata.call_count, read.call_count, len(sleeps.calls)) == (2, 1, 1, 1)


async def test_a_server_down_during_discovery_of_a_write_is_a_transient_error(
    router: respx.MockRouter, keys: KeyPair
) -> None:
    router.get(f"{BASE}/.well-known/smart-configuration").respond(502, text="<html>Bad Gateway</html>")
    router.get(f"{BASE}/metadata").respond(502, text="<html>Bad Gateway</html>")

    async with AsyncFhirClient(BASE, auth=smart(keys, FakeClock(), token_url=None)) as fhir:
        with pytest.raises(TransientError, match=r"not discovered: the FHIR server is unavailable \(HTTP 502\)"):
            await fhir.create({"resourceType": "Goal"})


@pytest.mark.parametrize(
    "expires_in", [b'"soon"', b"[300]", b"NaN", b"Infinity", b"-5", b"0", None], ids=lambda v: str(v)
)
async def test_a_token_lifetime_the_server_garbles_or_leaves_out_is_taken_as_five_minutes(
    router: respx.MockRouter, keys: KeyPair, expires_in: bytes | None
) -> None:
    # A word failed the read with a ValueError out of the auth flow; NaN or Infinity had the token
    # never refreshed before it expired; a negative one had a token fetched for every request.
    clock = FakeClock()
    issued: list[str] = []

    def token_endpoint(request: httpx.Request) -> httpx.Response:
        issued.append(f"token-{len(issued) + 1}")
        lifetime = b"" if expires_in is None else b', "expires_in": ' + expires_in
        body = b'{"access_token": "' + issued[-1].encode() + b'", "token_type": "bearer"' + lifetime + b"}"
        return httpx.Response(200, content=body, headers={"Content-Type": "application/json"})

    router.post(TOKEN_URL).mock(side_effect=token_endpoint)
    read = fhir_route(router, "Goal/1", {"resourceType": "Goal", "id": "1"}, lambda: set(issued))

    async with AsyncFhirClient(BASE, auth=smart(keys, clock)) as fhir:
        await fhir.read("Goal", "1")
        clock.now += 200  # within five minutes less the refresh margin: the same token
        await fhir.read("Goal", "1")
        clock.now += 50  # 50 s left of five minutes: a new one
        await fhir.read("Goal", "1")

    assert [c.request.headers["Authorization"] for c in read.calls] == [
        "Bearer token-1",
        "Bearer token-1",
        "Bearer token-2",
    ]


def test_a_basic_user_name_holding_a_colon_is_refused_at_start() -> None:
    # RFC 7617: the server splits "user:pass" at the first colon, so it would read another user.
    with pytest.raises(ValueError, match="FHIR_CM_USERNAME cannot hold ':'"):
        auth_from_settings(Settings(auth="basic", username="domain:ann", password="pw"))


@pytest.mark.parametrize("configured", [True, False], ids=["token-url", "discovered"])
async def test_a_token_endpoint_that_never_answers_times_out_as_the_client_says_naming_it(
    keys: KeyPair, configured: bool
) -> None:
    # Requests made by the auth flow had no timeout: a token endpoint (or a discovery) taking the
    # connection and never answering held the worker for ever. A real socket that never answers.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        where = f"http://127.0.0.1:{silent.getsockname()[1]}"
        auth = SmartBackendAuth(
            client_id=CLIENT_ID,
            private_key=keys.private_pem,
            fhir_base=f"{where}/fhir",
            algorithm=keys.alg,  # type: ignore[arg-type]
            token_url=f"{where}/token" if configured else None,
        )
        async with AsyncFhirClient(f"{where}/fhir", auth=auth, timeout=0.2, retry=NO_RETRY, fhir_version="R4") as fhir:
            with pytest.raises(TransientError) as caught:
                await asyncio.wait_for(fhir.read("Goal", "1"), 10)  # a bound for the test run, not the check

    said = "at the SMART token endpoint (http://127.0.0.1:" if configured else "discovering the SMART token endpoint"
    assert "network error (ReadTimeout)" in str(caught.value) and said in str(caught.value)


async def test_smart_settings_ending_in_the_line_end_of_an_env_file_are_taken_without_it(
    router: respx.MockRouter, keys: KeyPair, tmp_path: Any
) -> None:
    # A token URL ending in "\n" failed every token request with an InvalidURL out of the auth flow.
    clock = FakeClock()
    endpoint = TokenEndpoint(keys, clock)
    router.post(TOKEN_URL).mock(side_effect=endpoint)
    read = fhir_route(router, "Goal/1", {"resourceType": "Goal", "id": "1"}, lambda: set(endpoint.issued))
    key_file = tmp_path / "key.pem"
    key_file.write_bytes(keys.private_pem)
    settings = Settings(
        fhir_base=f"{BASE}\n",
        auth="smart",
        client_id=f"{CLIENT_ID}\n",
        private_key_file=f"{key_file}\n",
        private_key_alg=keys.alg,
        key_id="key-2025\n",
        token_url=f"{TOKEN_URL}\n",
    )

    async with client_from_settings(settings) as fhir:
        await fhir.read("Goal", "1")

    assert read.call_count == 1 and endpoint.issued == ["token-1"]  # the endpoint checked iss, sub, aud and kid


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        (
            httpx.Response(200, html="<html><form action='/login'>Sign in</form></html>"),
            "token endpoint answered 200 without an access_token (text/html): is FHIR_CM_TOKEN_URL",
        ),
        (
            httpx.Response(404, html="<html>Not Found</html>"),
            "refused client 'fhir-cm-backend' with HTTP 404 and no OAuth error (text/html)",
        ),
        (
            httpx.Response(400, json={"error": "invalid_scope", "error_description": "system/*.write not allowed"}),
            "refused client 'fhir-cm-backend': invalid_scope (system/*.write not allowed)",
        ),
    ],
    ids=["login-page", "not-found-page", "oauth-error"],
)
async def test_a_token_endpoint_answering_no_token_is_told_apart_from_one_refusing_the_client(
    router: respx.MockRouter, keys: KeyPair, answer: httpx.Response, said: str
) -> None:
    # A proxy's login page (200) read "refused client 'x': HTTP 200", as if the key were wrong.
    router.post(TOKEN_URL).mock(return_value=answer)

    async with AsyncFhirClient(BASE, auth=smart(keys, FakeClock())) as fhir:
        with pytest.raises(Unauthorized) as caught:
            await fhir.read("Goal", "1")

    assert said in str(caught.value) and "eyJ" not in str(caught.value)


@pytest.mark.parametrize(
    ("asked", "granted", "missing"),
    [
        ("system/*.read system/*.write", "system/*.read", ["system/*.write"]),
        ("system/*.read system/*.write", "system/*.rs system/*.cud", []),  # v1 answered in v2 words
        ("system/*.rs system/*.cud", "system/*.*", []),
        ("system/*.read", "system/Patient.read system/Goal.read", ["system/*.read"]),
        ("system/Goal.cruds", "system/*.cud", ["system/Goal.cruds"]),
        ("system/*.rs", "system/*.rs?category=x", []),  # narrowed by the server's own filter: not told
        ("system/*.read", "user/*.read", ["system/*.read"]),
    ],
)
def test_which_scopes_asked_a_grant_leaves_out(asked: str, granted: str, missing: list[str]) -> None:
    assert left_out(asked, granted) == missing
