"""A failure with no HTTP status says what happened and where, never which resource or whose data.

A request failing on the network raised a ``TransientError`` whose only words were the httpx class
('ConnectError'): the push's case showed 'TransientError; will retry'. ``summary`` names the host
(not the path: it holds the id; not the credentials of the URL) and what ran out or broke.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import socket
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fhir_cm.fhir import NO_RETRY, AsyncFhirClient, InvalidResponse, TransientError


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_name_that_does_not_resolve_is_named() -> None:
    async with AsyncFhirClient("http://fhir.nowhere.invalid/fhir", retry=NO_RETRY) as client:
        with pytest.raises(TransientError) as caught:
            await client.read("Patient", "mrn-0042")

    assert caught.value.summary == "the name fhir.nowhere.invalid could not be resolved"


async def test_a_refused_connection_names_the_host_not_the_resource() -> None:
    port = closed_port()
    async with AsyncFhirClient(f"http://clerk:s3cret@127.0.0.1:{port}/fhir", retry=NO_RETRY) as client:
        with pytest.raises(TransientError) as caught:
            await client.read("Patient", "mrn-0042")

    assert caught.value.summary == f"connection refused by 127.0.0.1:{port} (nothing listening there?)"
    assert "mrn-0042" not in caught.value.summary and "s3cret" not in caught.value.summary


async def test_a_server_that_never_answers_names_the_timeout_that_ran_out() -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)  # read nothing, answer nothing

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with AsyncFhirClient(f"http://127.0.0.1:{port}/fhir", timeout=0.25, retry=NO_RETRY) as client:
            with pytest.raises(TransientError) as caught:
                await client.read("Patient", "mrn-0042")
    finally:
        for writer in accepted:
            writer.close()
        server.close()

    assert caught.value.summary == (
        f"127.0.0.1:{port} did not answer in time (timed out after 0.25 s waiting for the answer)"
    )


async def test_an_answer_to_a_batch_that_is_no_bundle_says_so() -> None:
    async def not_a_bundle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(v) for k, _, v in (h.partition(b":") for h in head.split(b"\r\n")) if k.lower() == b"content-length"
        )
        await reader.readexactly(length)
        body = b'{"resourceType": "OperationOutcome", "issue": []}'
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/fhir+json\r\n")
        writer.write(b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(not_a_bundle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with AsyncFhirClient(f"http://127.0.0.1:{port}/fhir", retry=NO_RETRY) as client:
            with pytest.raises(InvalidResponse) as caught:
                await client.post_bundle({"resourceType": "Bundle", "type": "batch", "entry": []}, safe=True)
    finally:
        server.close()

    assert caught.value.summary == "the server's answer to a batch was not a FHIR Bundle"


async def https_summary(server: asyncio.Server) -> str:
    """What a read over https:// from ``server`` fails with; the server is closed after."""
    port = server.sockets[0].getsockname()[1]
    try:
        async with AsyncFhirClient(f"https://127.0.0.1:{port}/fhir", retry=NO_RETRY) as client:
            with pytest.raises(TransientError) as caught:
                await client.read("Patient", "mrn-0042")
    finally:
        server.close()
    return caught.value.summary


async def test_https_to_a_server_speaking_plain_http_says_so_not_a_certificate() -> None:
    """An https:// base for a server that speaks plain HTTP fails in the handshake ("wrong version
    number" / "record layer failure" from OpenSSL): no certificate was ever seen, so it is not one
    to distrust."""

    async def plain_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)  # the TLS ClientHello, answered as a web server answers garbage
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(plain_http, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]

    assert await https_summary(server) == (
        f"127.0.0.1:{port} does not speak TLS (a plain-HTTP server? try http:// in the FHIR base)"
    )


def self_signed(directory: Path) -> ssl.SSLContext:
    """A server context with a certificate for 127.0.0.1 that no one vouches for."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )
    (directory / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(directory / "cert.pem", directory / "key.pem")
    return context


async def test_a_certificate_no_one_vouches_for_is_named_as_not_trusted(tmp_path: Path) -> None:
    async def hang_up(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0, ssl=self_signed(tmp_path))
    port = server.sockets[0].getsockname()[1]

    assert await https_summary(server) == (
        f"the TLS handshake with 127.0.0.1:{port} failed: its certificate is not trusted (self-signed certificate)"
    )
