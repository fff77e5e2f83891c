#!/usr/bin/env python3
"""Writes the seed corpora fuzz/corpus/<target>/ from the repository's own test data (vendored
third-party vectors, testdata folders, example policies). Run from anywhere; commit what it
writes. Seeds are named `seed-<source>`; files libFuzzer adds during a run are not seeds and are
not committed (`make fuzz` keeps them in fuzz/corpus/<target>/.work)."""

import base64
import json
import shutil
from pathlib import Path

FUZZ = Path(__file__).resolve().parent
REPO = FUZZ.parent
THIRD = REPO / "tests/third-party"
CORPUS = FUZZ / "corpus"
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "k", "oth"}


def load(path):
    return json.loads(Path(path).read_text())


def public(jwk):
    return {k: v for k, v in jwk.items() if k not in PRIVATE_MEMBERS}


def b64json(segment):
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def write(target, name, data):
    folder = CORPUS / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"seed-{name}").write_bytes(data if isinstance(data, bytes) else data.encode())


def token_seed(target, name, token, jwks, now=None):
    """verify_token: now, issuer, audience, token, JWKS. Issuer, audience and now come from
    the payload when it parses, so a real token verifies completely."""
    issuer, audience = "https://gitlab.com", "api://AzureADTokenExchange"
    try:
        claims = b64json(token.split(".")[1])
        issuer = claims.get("iss", issuer)
        aud = claims.get("aud", audience)
        audience = aud[0] if isinstance(aud, list) and aud else aud
        now = now if now is not None else claims.get("iat", claims.get("exp", 1) - 1)
    except Exception:
        pass
    jwks = jwks if "keys" in jwks else {"keys": [jwks]}
    body = f"{now or 1700000000}\n{issuer}\n{audience}\n{token}\n{json.dumps(jwks, separators=(',', ':'))}"
    write(target, name, body)


def tokens():
    gitlab_jwks = load(THIRD / "gitlab/gitlab_com_jwks.json")
    for i, entry in enumerate(load(THIRD / "gitlab/gitlab_com_tokens.json")["tokens"]):
        token_seed("verify_token", f"gitlab-com-{i}", entry["token"], gitlab_jwks)
    for case in load(THIRD / "real-oidc/alerta_provider_tokens.json")["cases"]:
        if case.get("jwks", {}).get("keys"):
            token_seed("verify_token", f"alerta-{case['test']}-{case['field']}", case["token"], case["jwks"])
    for case in load(THIRD / "rfc7515/rfc7515_appendix_A.json")["cases"]:
        jwk = case.get("jwk_public") or public(case["jwk_private"])
        token_seed("verify_token", f"rfc7515-{case['rfc7515_section']}", case["jws_compact"], jwk)
    for path in sorted((THIRD / "jose-cookbook/jws").glob("4_[123].*.json")):
        case = load(path)
        token_seed("verify_token", f"cookbook-{path.name[:3]}", case["output"]["compact"], public(case["input"]["key"]))
    wycheproof = load(THIRD / "wycheproof/testvectors_v1/json_web_signature_test.json")
    for group in wycheproof["testGroups"]:
        if group["private"].get("kty") in (None, "oct"):
            continue
        for test in group["tests"][:12]:
            token_seed("verify_token", f"wycheproof-jws-{test['tcId']}", test["jws"], public(group["private"]))


def jwks():
    write("jwks", "gitlab-com", (THIRD / "gitlab/gitlab_com_jwks.json").read_bytes())
    for case in load(THIRD / "real-oidc/alerta_provider_tokens.json")["cases"]:
        if case.get("jwks", {}).get("keys"):
            write("jwks", f"alerta-{case['test']}", json.dumps(case["jwks"]))
    keysets = load(THIRD / "wycheproof/testvectors_v1/json_web_key_test.json")
    for group in keysets["testGroups"]:
        private = group["private"]
        keys = private["keys"] if "keys" in private else [private]
        write("jwks", f"wycheproof-jwk-{group['comment']}", json.dumps({"keys": [public(k) for k in keys]}))


def claims_examples():
    fulcio = (THIRD / "gitlab/fulcio_gitlab_claims_unsigned.json").read_text()
    job = {"iss": "https://gitlab.com", "aud": "api://AzureADTokenExchange", "exp": 1700003600,
           "iat": 1700000000, "nbf": 1699999995, "jti": "f7d4c5b0-1e0e-4a38-9b8f-2b7a1c0c9d11",
           "sub": "project_path:acme/payments:ref_type:branch:ref:main",
           "project_path": "acme/payments", "project_id": "4242", "namespace_id": "11",
           "namespace_path": "acme", "ref": "main", "ref_type": "branch", "ref_protected": "true",
           "pipeline_source": "push", "environment": "production", "environment_protected": "true",
           "runner_environment": "gitlab-hosted", "job_id": "7000001", "user_login": "alice"}
    try:
        fulcio_claims = json.loads(fulcio)
        fulcio_claims = fulcio_claims.get("claims", fulcio_claims)
    except ValueError:
        fulcio_claims = job
    return [("job", json.dumps(job)), ("fulcio", json.dumps(fulcio_claims))]


def policies():
    docs = sorted((REPO / "examples/policies").glob("*.json")) + [REPO / "src/pipeline/testdata/planted.policy.json"]
    for path in docs:
        for name, claims in claims_examples():
            write("policy", f"{path.stem}-{name}", path.read_bytes() + b"\0" + claims.encode())


def globs():
    cases = [
        ("feature/*", ["feature/x", "feature/x/y", "main"]),
        ("release/**", ["release/1.0", "release/a/b", "release"]),
        ("a/**/b", ["a/b", "a/x/b", "a/x/y/b", "ab"]),
        ("v?.*", ["v1.0", "v10.0", "v/.0"]),
        ("\\*literal\\?", ["*literal?", "xliteralx"]),
        ("**/deploy", ["deploy", "a/deploy", "a/b/deploy"]),
        ("**", ["", "a/b/c"]),
    ]
    for i, (pattern, values) in enumerate(cases):
        write("glob", f"doc-{i}", "\n".join([pattern] + values))


def expressions():
    cases = [
        ("claims['sub'] matches 'project_path:acme/*:ref_type:branch:ref:main'",
         ["sub=project_path:acme/payments:ref_type:branch:ref:main"]),
        ("claims['sub'] eq 'project_path:acme/payments:ref_type:tag:ref:v1'",
         ["sub=project_path:acme/payments:ref_type:tag:ref:v1"]),
        ("claims['sub'] matches 'repo:*' and claims['ref'] eq 'main'", ["sub=repo:x", "ref=main"]),
        ("claims['sub'] matches '?*?'", ["sub=ab"]),
        ("claims['project_id'] eq '42'", ["project_id=#42"]),
    ]
    for i, (source, claims) in enumerate(cases):
        write("expression", f"doc-{i}", "\n".join([source] + claims))


def entra():
    ok = {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
          "access_token": "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL21hbmFnZW1lbnQuYXp1cmUuY29tIn0.c2ln"}
    error = {"error": "invalid_client", "error_description": "AADSTS700213: No matching federated identity record found for presented assertion subject.\r\nTrace ID: 1f0e",
             "error_codes": [700213], "timestamp": "2026-01-01 00:00:00Z", "trace_id": "1f0e", "correlation_id": "2a1b",
             "error_uri": "https://login.microsoftonline.com/error?code=700213"}
    answers = [("ok", 200, "application/json; charset=utf-8", "", json.dumps(ok)),
               ("ok-string-expiry", 200, "application/json", "", json.dumps({**ok, "expires_in": "3599"})),
               ("aadsts", 400, "application/json", "", json.dumps(error)),
               ("throttled", 429, "application/json", "7", json.dumps({**error, "error_codes": [50196]})),
               ("server", 503, "text/plain", "Wed, 21 Oct 2015 07:28:00 GMT", "Service Unavailable"),
               ("portal", 200, "text/html", "", "<html><head><title>Sign in</title></head></html>"),
               ("truncated", 400, "application/json", "", json.dumps(ok)[:90])]
    for name, status, content_type, retry_after, body in answers:
        write("entra_response", name, f"{status}\n{content_type}\n{retry_after}\n{body}")
    token = load(THIRD / "gitlab/gitlab_com_tokens.json")["tokens"][0]["token"]
    requests = [("federated", "72f988bf-86f1-41af-91ab-2d7cd011db47", "2b3c4d5e-6f70-4a81-9b2c-3d4e5f607182",
                 "https://management.azure.com/.default", ""),
                ("sovereign", "contoso.onmicrosoft.com", "2b3c4d5e-6f70-4a81-9b2c-3d4e5f607182",
                 "https://vault.azure.net/.default https://storage.azure.com/.default", "login.microsoftonline.us")]
    for name, tenant, client, scopes, host in requests:
        write("entra_request", name, f"{tenant}\n{client}\n{scopes}\n{host}\n{token}")
    data = REPO / "src/entra/testdata"
    cert = (data / "rsa-2048.cert.pem").read_bytes()
    for key in ["rsa-2048.key.pem", "rsa-2048.pkcs1.pem", "rsa-2048.encrypted.pem", "rsa-1024.key.pem", "ec-p256.key.pem"]:
        write("credential", f"pem-{key}", b"\0" + (data / key).read_bytes() + b"\0" + cert)
    write("credential", "pem-mismatch", b"\0" + (data / "rsa-2048.key.pem").read_bytes() + b"\0" + (data / "other-2048.cert.pem").read_bytes())
    write("credential", "der-key", b"\1" + (data / "rsa-2048.key.pk8.der").read_bytes())
    write("credential", "der-cert", b"\2" + (data / "rsa-2048.cert.der").read_bytes())


def rbac():
    for path in sorted((REPO / "src/rbac/testdata").glob("*.json")):
        write("rbac_export", path.stem, path.read_bytes())


def pipeline():
    for path in sorted((REPO / "src/pipeline/testdata").rglob("*.json")):
        if path.name.endswith((".policy.json", ".credentials.json")):
            continue
        write("pipeline", str(path.relative_to(REPO / "src/pipeline/testdata")).replace("/", "-"), path.read_bytes())


def token_mutation():
    # Structured input (arbitrary): a few byte strings give the fuzzer starting shapes.
    for i, seed in enumerate([b"\0" * 64, b"\1" + b"sub" * 10, b"\2" + bytes(range(64))]):
        write("token_mutation", f"shape-{i}", seed)


def component():
    # The component target takes verify_token's format.
    for path in sorted((CORPUS / "verify_token").glob("seed-*"))[:40]:
        write("component", path.name[len("seed-"):], path.read_bytes())


def main():
    for folder in CORPUS.glob("*"):
        for seed in folder.glob("seed-*"):
            seed.unlink()
    tokens()
    jwks()
    policies()
    globs()
    expressions()
    entra()
    rbac()
    pipeline()
    token_mutation()
    component()
    for folder in sorted(CORPUS.iterdir()):
        print(f"{folder.name}: {len(list(folder.glob('seed-*')))} seeds")


if __name__ == "__main__":
    main()
