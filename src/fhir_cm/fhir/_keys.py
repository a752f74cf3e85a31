"""The private key a SMART Backend Services client signs its assertions with, checked when loaded.

Every problem with the key is a configuration error to be told at start-up, in words an engineer can
act on: a key that cannot sign with the configured algorithm only failed at the first token request,
deep in the signing library ("Expecting a PEM-formatted key."), and an encrypted key with a
``TypeError`` the command line did not report as a setting.
"""

from __future__ import annotations

from typing import Literal

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import load_pem_private_key

__all__ = ["SigningKey", "load_signing_key"]

SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def load_signing_key(pem: bytes, algorithm: Literal["RS384", "ES384"], *, password: bytes | None = None) -> SigningKey:
    """The private key in ``pem``, fit to sign with ``algorithm``; ``ValueError`` saying what is wrong.

    RS384 signs with an RSA key; ES384 with an elliptic-curve key on P-384 (RFC 7518 §3.4: a P-256
    key is for ES256, which SMART does not allow).
    """
    key = _load(pem, password)
    if algorithm == "RS384" and not isinstance(key, rsa.RSAPrivateKey):
        hint = " (FHIR_CM_PRIVATE_KEY_ALG=ES384 signs with it)" if _p384(key) else ""
        raise ValueError(f"the private key is {_kind(key)}: RS384 signs with an RSA key{hint}")
    if algorithm == "ES384" and not _p384(key):
        hint = " (FHIR_CM_PRIVATE_KEY_ALG=RS384 signs with it)" if isinstance(key, rsa.RSAPrivateKey) else ""
        raise ValueError(f"the private key is {_kind(key)}: ES384 signs with an EC key on P-384 (secp384r1){hint}")
    assert isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
    return key


def _p384(key: PrivateKeyTypes) -> bool:
    return isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP384R1)


def _load(pem: bytes, password: bytes | None) -> PrivateKeyTypes:
    if b"-----BEGIN" not in pem:
        raise ValueError("the private key file is not PEM (-----BEGIN PRIVATE KEY-----); convert a JWK to it")
    if b"PRIVATE KEY-----" not in pem:
        raise ValueError("the private key file holds no private key (a public key or a certificate?)")
    try:
        return load_pem_private_key(pem, password=password)
    except TypeError:  # encrypted without a password, or a password for a key that is not encrypted
        if password is None:
            raise ValueError(
                "the private key is encrypted: give its passphrase in FHIR_CM_PRIVATE_KEY_PASSWORD"
            ) from None
        raise ValueError("the private key is not encrypted: leave FHIR_CM_PRIVATE_KEY_PASSWORD unset") from None
    except ValueError:  # a wrong passphrase, or a damaged or unsupported key
        if password is not None:
            raise ValueError("the private key could not be decrypted with FHIR_CM_PRIVATE_KEY_PASSWORD") from None
        raise ValueError("the private key cannot be read (damaged, or of a kind not supported)") from None


def _kind(key: PrivateKeyTypes) -> str:
    if isinstance(key, rsa.RSAPrivateKey):
        return "an RSA key"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return f"an EC key on {key.curve.name}"
    return f"a {type(key).__name__.removeprefix('_')} key"
