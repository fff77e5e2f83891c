"""The component's `signatures` import answered by `cryptography` (OpenSSL), and `check`.

Every verdict must be the same with native checks on and off: the component makes every refusal
itself and only asks the host for the arithmetic, naming the `scheme`."""

from __future__ import annotations

import base64
import json
import time

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from gitlab_azure_oidc import OidcError, Runtime, VerifierConfig


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def int_bytes(n: int) -> bytes:
    return n.to_bytes((n.bit_length() + 7) // 8, "big")


ISS = "https://gitlab.example.com"
AUD = "api://AzureADTokenExchange"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEYS = {"ES256": ec.generate_private_key(ec.SECP256R1()),
           "ES384": ec.generate_private_key(ec.SECP384R1())}
#: Every JWS algorithm the WIT names, so every `scheme` of the import is asked for.
ALGS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384"]
HASHES = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}


def jwks() -> str:
    n = RSA_KEY.public_key().public_numbers()
    keys = [{"kty": "RSA", "kid": "rsa", "n": b64u(int_bytes(n.n)), "e": b64u(int_bytes(n.e))}]
    for alg, key in EC_KEYS.items():
        p, size = key.public_key().public_numbers(), key.curve.key_size // 8
        keys.append({"kty": "EC", "kid": alg, "crv": f"P-{alg[2:]}", "x": b64u(p.x.to_bytes(size, "big")),
                     "y": b64u(p.y.to_bytes(size, "big"))})
    return json.dumps({"keys": keys})


def mint(alg: str) -> str:
    now = int(time.time())
    header = {"alg": alg, "kid": alg if alg.startswith("ES") else "rsa", "typ": "JWT"}
    claims = {"iss": ISS, "aud": AUD, "sub": "project_path:acme/app:ref_type:branch:ref:main",
              "iat": now - 5, "exp": now + 300, "jti": "jti-" + alg}
    signing_input = f"{b64u(json.dumps(header).encode())}.{b64u(json.dumps(claims).encode())}"
    data, digest = signing_input.encode(), HASHES[alg[2:]]()
    if alg.startswith("RS"):
        sig = RSA_KEY.sign(data, padding.PKCS1v15(), digest)
    elif alg.startswith("PS"):
        sig = RSA_KEY.sign(data, padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size),
                           digest)
    else:
        key = EC_KEYS[alg]
        r, s = utils.decode_dss_signature(key.sign(data, ec.ECDSA(digest)))
        size = key.curve.key_size // 8
        sig = r.to_bytes(size, "big") + s.to_bytes(size, "big")
    return f"{signing_input}.{b64u(sig)}"


def tamper(token: str) -> str:
    head, _, sig = token.rpartition(".")
    return f"{head}.{sig[:10]}{'A' if sig[10] != 'A' else 'B'}{sig[11:]}"


def outcomes(runtime: Runtime, tokens):
    config = VerifierConfig(issuer=ISS, audiences=[AUD], algorithms=[a.lower() for a in ALGS])
    verifier = runtime.verifier(config, jwks())
    results = []
    for token in tokens:
        try:
            verifier.verify(token)
            results.append("ok")
        except OidcError as e:
            results.append(e.kind)
    return results


def test_native_and_in_component_verdicts_agree_and_native_is_used():
    tokens = []
    for alg in ALGS:
        good = mint(alg)
        tokens += [good, tamper(good)]
    native, plain = Runtime(), Runtime(native_signatures=False)
    with_native = outcomes(native, tokens)
    assert with_native == ["ok", "bad-signature"] * len(ALGS)
    assert outcomes(plain, tokens) == with_native
    assert native.native_signature_checks == len(tokens)
    assert plain.native_signature_checks == 0


def test_check_returns_the_identity_and_still_judges_expiry():
    rt = Runtime()
    config = VerifierConfig(issuer=ISS, audiences=[AUD])
    verifier = rt.verifier(config, jwks())
    token = mint("RS256")
    verified = verifier.verify(token)
    checked = verifier.check(token)
    assert checked.fingerprint == verified.fingerprint
    assert checked.jti == "jti-RS256"
    assert checked.expires_at == verified.claims.exp
    assert rt.native_signature_checks == 1  # the check was a cache hit
    with pytest.raises(OidcError) as err:
        verifier.check(token, now=verified.claims.exp + 61)
    assert err.value.kind == "expired"


def test_keys_that_share_a_modulus_are_not_confused():
    """The native key cache must key on the whole key: the same modulus with another exponent is
    another key, and a token signed for the first must not verify under the second."""
    n = RSA_KEY.public_key().public_numbers().n
    doc = json.dumps({"keys": [
        {"kty": "RSA", "kid": "rsa", "n": b64u(int_bytes(n)), "e": b64u(int_bytes(65537))},
        {"kty": "RSA", "kid": "other-e", "n": b64u(int_bytes(n)), "e": b64u(int_bytes(3))},
    ]})
    rt = Runtime()
    verifier = rt.verifier(VerifierConfig(issuer=ISS, audiences=[AUD]), doc)
    verifier.verify(mint("RS256"))  # parses and keeps the kid `rsa` key natively
    # Signed with the (n, 65537) private key, but naming the (n, 3) key: only the exponent
    # tells them apart.
    now = int(time.time())
    header = {"alg": "RS256", "kid": "other-e", "typ": "JWT"}
    claims = {"iss": ISS, "aud": AUD, "sub": "x", "iat": now - 5, "exp": now + 300}
    signing_input = f"{b64u(json.dumps(header).encode())}.{b64u(json.dumps(claims).encode())}"
    signature = RSA_KEY.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    relabelled = f"{signing_input}.{b64u(signature)}"
    with pytest.raises(OidcError) as err:
        verifier.verify(relabelled)
    assert err.value.kind == "bad-signature"
    assert rt.native_signature_checks == 2
