"""Interop: tokens signed by the `openssl` CLI (RS256, PS256, ES256) verify through the
component, and the same tokens altered in one byte are refused."""

from __future__ import annotations

import base64
import json
import subprocess
import time

import pytest

from gitlab_azure_oidc import OidcError, Verifier, VerifierConfig

ISSUER = "https://gitlab.example.com"
AUDIENCE = "api://AzureADTokenExchange"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def openssl(*args: str, data: bytes = b"") -> bytes:
    return subprocess.run(["openssl", *args], input=data, capture_output=True, check=True).stdout


def der_to_raw(der: bytes, size: int = 32) -> bytes:
    """ECDSA-Sig-Value (SEQUENCE of two INTEGERs) to JWS's r || s."""
    assert der[0] == 0x30
    i = 2 if der[1] < 0x80 else 2 + (der[1] & 0x7F)
    out = b""
    for _ in range(2):
        assert der[i] == 0x02
        length = der[i + 1]
        out += der[i + 2:i + 2 + length].lstrip(b"\x00").rjust(size, b"\x00")
        i += 2 + length
    return out


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("openssl")
    rsa, ec = d / "rsa.pem", d / "ec.pem"
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(rsa))
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(ec))
    modulus = openssl("rsa", "-in", str(rsa), "-noout", "-modulus").decode().strip().split("=")[1]
    point = openssl("pkey", "-in", str(ec), "-pubout", "-outform", "DER")[-65:]
    assert point[0] == 0x04
    jwks = {"keys": [
        {"kty": "RSA", "kid": "openssl-rsa", "use": "sig", "n": b64(bytes.fromhex(modulus)), "e": "AQAB"},
        {"kty": "EC", "kid": "openssl-ec", "use": "sig", "crv": "P-256", "x": b64(point[1:33]), "y": b64(point[33:])},
    ]}
    return {"rsa": rsa, "ec": ec, "jwks": json.dumps(jwks)}


def sign(keys, alg: str) -> str:
    now = int(time.time())
    header = {"alg": alg, "typ": "JWT", "kid": "openssl-ec" if alg == "ES256" else "openssl-rsa"}
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "project_path:acme/payments:ref_type:branch:ref:main",
              "iat": now, "nbf": now, "exp": now + 300, "project_path": "acme/payments"}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    if alg == "RS256":
        sig = openssl("dgst", "-sha256", "-sign", str(keys["rsa"]), data=signing_input.encode())
    elif alg == "PS256":
        sig = openssl("dgst", "-sha256", "-sign", str(keys["rsa"]), "-sigopt", "rsa_padding_mode:pss",
                      "-sigopt", "rsa_pss_saltlen:32", data=signing_input.encode())
    else:
        sig = der_to_raw(openssl("dgst", "-sha256", "-sign", str(keys["ec"]), data=signing_input.encode()))
    return f"{signing_input}.{b64(sig)}"


@pytest.fixture(scope="module")
def verifier(keys):
    config = VerifierConfig(ISSUER, [AUDIENCE], algorithms=["rs256", "ps256", "es256"])
    with Verifier(config, keys["jwks"]) as v:
        yield v


@pytest.mark.parametrize("alg", ["RS256", "PS256", "ES256"])
def test_openssl_signed_tokens_verify(keys, verifier, alg):
    token = verifier.verify(sign(keys, alg))
    assert token.header.alg == alg.lower()
    assert token.gitlab.project_path == "acme/payments"


@pytest.mark.parametrize("alg", ["RS256", "PS256", "ES256"])
@pytest.mark.parametrize("part", [0, 1, 2])
def test_one_altered_byte_is_refused(keys, verifier, alg, part):
    """One byte of the decoded header, payload or signature changed, re-encoded validly."""
    parts = sign(keys, alg).split(".")
    raw = bytearray(unb64(parts[part]))
    # In JSON, change a letter inside a value that is still valid JSON; in the signature, any byte.
    index = raw.find(b"acme") + 1 if part == 1 else (raw.find(b"JWT") + 1 if part == 0 else len(raw) // 2)
    raw[index] ^= 0x01
    parts[part] = b64(bytes(raw))
    with pytest.raises(OidcError) as e:
        verifier.verify(".".join(parts))
    # The header's `typ` is not signed-in-isolation: a changed header byte breaks the signature too.
    assert e.value.kind == "bad-signature", e.value
