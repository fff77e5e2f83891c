#!/usr/bin/env python3
"""Writes the seed corpora fuzz/corpus/<target>/ from the repository's own test data (vendored
third-party vectors, testdata folders, example policies, the broker's examples and tests). Run
from anywhere; commit what it writes. Seeds are named `seed-<source>`; `seed-coincidence-*` are
inputs kept by hand (a leak check fired on a coincidence) and stay. Files libFuzzer adds during a
run are not seeds and are not committed (`fuzz/run.py` keeps them in fuzz/work/<target>/)."""

import base64
import hashlib
import json
import shutil
import textwrap
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


def jwt(header, claims, signature_seed):
    """A compact JWS of the given header and claims; the signature is 256 stand-in bytes."""
    sig = hashlib.sha256(signature_seed.encode()).digest() * 8
    parts = [json.dumps(header, separators=(",", ":")).encode(), json.dumps(claims, separators=(",", ":")).encode(), sig]
    return ".".join(base64.urlsafe_b64encode(p).rstrip(b"=").decode() for p in parts)


def vend_requests():
    """vend_request: method, Content-Type, Authorization, body (src/broker/tests.rs,
    examples/envoy/tests/brokerkit.py's `vend`)."""
    token = load(THIRD / "gitlab/gitlab_com_tokens.json")["tokens"][0]["token"]
    bearer = f"Bearer {token}"
    vault = "https://vault.azure.net/.default"
    requests = [
        ("plain", "POST", "", bearer, ""),
        ("json", "POST", "application/json", bearer, json.dumps({"scope": vault, "kind": "assertion"})),
        ("json-charset-nulls", "POST", "application/json; charset=utf-8", bearer, '{"scope":null,"kind":null}'),
        ("json-sniffed", "post", "", f"bearer  {token} ", ' {"kind":"access_token"}'),
        ("form", "POST", "application/x-www-form-urlencoded", bearer,
         "scope=https%3A%2F%2Fvault.azure.net%2F.default&kind=access_token"),
        ("form-plus", "POST", "application/x-www-form-urlencoded", bearer, "scope=a+b&&kind=&scope="),
        ("get", "GET", "", bearer, ""),
        ("no-token", "POST", "application/json", "", "{}"),
        ("empty-token", "POST", "", "Bearer ", ""),
        ("basic", "POST", "", "Basic dXNlcjpzZWNyZXQ=", ""),
        ("unknown-kind", "POST", "application/json", bearer, '{"kind":"refresh"}'),
        ("unknown-member", "POST", "application/json", bearer, '{"scopes":"x"}'),
        ("not-object", "POST", "application/json", bearer, "[1]"),
        ("text-plain", "POST", "text/plain", bearer, "x"),
        ("bad-percent", "POST", "application/x-www-form-urlencoded", bearer, "scope=%zz"),
    ]
    for name, method, content_type, authorization, body in requests:
        write("vend_request", name, f"{method}\n{content_type}\n{authorization}\n{body}")


def identity_responses():
    """identity_response: status, Content-Type, Retry-After, body: the answers of IMDS and App
    Service (azure-sdk-for-python imds.py and app_service.py; src/broker/tests.rs)."""
    now, uami = 1_760_000_000, "0b9a3c6e-8f1d-4e2a-9c7b-5d4e3f2a1b0c"
    tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"
    token = jwt({"typ": "JWT", "alg": "RS256", "kid": "PoVKeirIOvmTyLQ9G9BenBwos7k"},
                {"aud": "fb60f99c-7a34-4190-8149-302f77469936", "iss": f"https://login.microsoftonline.com/{tenant}/v2.0",
                 "iat": now, "nbf": now, "exp": now + 86399, "oid": "5d4e3f2a-1b0c-4e2a-9c7b-0b9a3c6e8f1d",
                 "sub": "5d4e3f2a-1b0c-4e2a-9c7b-0b9a3c6e8f1d", "tid": tenant, "azp": uami}, "identity")
    imds = {"access_token": token, "client_id": uami, "expires_in": "86399", "expires_on": str(now + 86399),
            "ext_expires_in": "86399", "not_before": str(now), "resource": "api://AzureADTokenExchange",
            "token_type": "Bearer"}
    app_service = {"access_token": token, "expires_on": now + 3600, "resource": "api://AzureADTokenExchange",
                   "token_type": "Bearer", "client_id": uami}
    answers = [
        ("imds", 200, "application/json; charset=utf-8", "", json.dumps(imds)),
        ("app-service", 200, "application/json", "", json.dumps(app_service)),
        ("expires-in-only", 200, "application/json", "", json.dumps({"access_token": token, "expires_in": 3600})),
        ("not-jwt", 200, "application/json", "", json.dumps({"access_token": "not a jwt", "expires_in": 3600})),
        ("expired", 200, "application/json", "", json.dumps({**imds, "expires_on": str(now + 10)})),
        ("not-assigned", 400, "application/json", "",
         json.dumps({"error": "invalid_request", "error_description": "Identity not found"})),
        ("unauthorized", 403, "application/json", "", json.dumps({"statusCode": 403, "message": "Unauthorized"})),
        ("throttled", 429, "application/json", "7",
         json.dumps({"error": "too_many_requests", "error_description": "Too many requests"})),
        ("starting", 404, "text/plain", "", "Not Found"),
        ("server", 500, "application/json", "", json.dumps({"error": "unknown", "message": "internal error"})),
        ("truncated", 500, "application/json", "", json.dumps(imds)[:120]),
    ]
    for name, status, content_type, retry_after, body in answers:
        write("identity_response", name, f"{status}\n{content_type}\n{retry_after}\n{body}")


def envoy_broker_document():
    """The `broker` member of examples/envoy/broker.yaml's filter configuration (a JSON string in
    the YAML: read without a YAML parser)."""
    lines = (REPO / "examples/envoy/broker.yaml").read_text().splitlines()
    for i, line in enumerate(lines):
        if line.strip() == "value: |":
            indent = len(line) - len(line.lstrip())
            block = []
            for rest in lines[i + 1:]:
                if rest.strip() and len(rest) - len(rest.lstrip()) <= indent:
                    break
                block.append(rest)
            config = json.loads(textwrap.dedent("\n".join(block)))
            if "broker" in config:
                return config["broker"]
    raise SystemExit("examples/envoy/broker.yaml: no broker configuration found")


def broker_configs():
    """broker_config: the mode (`broker` or `plan`), then the document. The target's environment
    names the keys of examples/envoy/broker.yaml and examples/envoy/tests/brokerkit.py."""
    url = "https://broker.example.com"
    signing = {"private_key": {"env": "BROKER_KEY_A"}, "use": "signing"}
    public = {"public_key": {"env": "BROKER_PUBLIC_KEY"}}
    keys = (REPO / "testkit/keys")
    inline_pem = "-----BEGIN PRIVATE KEY-----\n" + "\n".join(textwrap.wrap(
        base64.b64encode((keys / "rsa-2048.pk8.der").read_bytes()).decode(), 64)) + "\n-----END PRIVATE KEY-----\n"
    spki = (REPO / "src/entra/testdata/rsa-2048.spki.der").read_bytes()
    public_pem = "-----BEGIN PUBLIC KEY-----\n" + "\n".join(textwrap.wrap(base64.b64encode(spki).decode(), 64)) + "\n-----END PUBLIC KEY-----\n"
    documents = [
        ("envoy", "broker", envoy_broker_document()),
        ("envoy-plan", "plan", envoy_broker_document()),
        ("brokerkit", "broker", {
            "issuer": {"url": "http://127.0.0.1:10000", "keys": [signing, {"private_key": {"env": "BROKER_KEY_B"}, "use": "published"}]},
            "managed_identity": {"endpoint": "imds", "dangerous_url": "http://127.0.0.1:8443/metadata/identity/oauth2/token"},
            "certificates": {"app-cert": {"private_key": {"env": "APP_KEY"}, "certificate": {"env": "APP_CERT"}}}}),
        ("app-service", "broker", {"managed_identity": {"endpoint": "app-service"}}),
        ("app-service-explicit", "broker", {"managed_identity": {
            "endpoint": "app-service", "url": "http://localhost:42356/msi/token", "header": {"env": "IDENTITY_HEADER"}}}),
        ("app-service-unset", "broker", {"managed_identity": {"endpoint": "app-service", "url": {"env": "UNSET"}}}),
        ("below-path", "broker", {"issuer": {"url": f"{url}/tenant-a", "assertion_lifetime": 600, "keys": [
            {**signing, "kid": "2026-05"}, {"private_key": {"env": "BROKER_KEY_3072"}, "kid": "2026-11"}, {**public, "kid": "2025-11"}]}}),
        ("plan-public", "plan", {"issuer": {"url": url, "keys": [
            {"private_key": {"env": "UNSET"}, "public_key": {"value": public_pem}, "use": "signing"}]}}),
        ("inline-private", "broker", {"issuer": {"url": url, "keys": [
            {"private_key": {"value": inline_pem}, "use": "signing"}]}}),
        ("inline-pkcs1", "broker", {"issuer": {"url": url, "keys": [{"private_key": {"value":
            "-----BEGIN RSA PRIVATE KEY-----\nMIIsecret\n-----END RSA PRIVATE KEY-----"}, "use": "signing"}]}}),
        ("small-key", "broker", {"issuer": {"url": url, "keys": [{"private_key": {"env": "BROKER_KEY_1024"}, "use": "signing"}]}}),
        ("no-signing", "broker", {"issuer": {"url": url, "keys": [{"private_key": {"env": "BROKER_KEY_A"}}]}}),
        ("public-signing", "broker", {"issuer": {"url": url, "keys": [{**public, "use": "signing"}]}}),
        ("several-signing", "broker", {"issuer": {"url": url, "keys": [signing, {**signing, "private_key": {"env": "BROKER_KEY_B"}}]}}),
        ("duplicate-kid", "broker", {"issuer": {"url": url, "keys": [signing, {"private_key": {"env": "BROKER_SIGNING_KEY"}}]}}),
        ("trailing-slash", "broker", {"issuer": {"url": url + "/", "keys": [signing]}}),
        ("long-lifetime", "broker", {"issuer": {"url": url, "assertion_lifetime": 601, "keys": [signing]}}),
        ("bad-kid", "broker", {"issuer": {"url": url, "keys": [{**signing, "kid": "a kid"}]}}),
        ("keys-100", "broker", {"issuer": {"url": url, "keys": [signing] + [{**public, "kid": f"k{i}"} for i in range(99)]}}),
        ("keys-101", "plan", {"issuer": {"url": url, "keys": [{**public, "kid": f"k{i}"} for i in range(101)]}}),
        ("certificate-rs256", "broker", {"certificates": {"payments-legacy": {
            "private_key": {"env": "PAYMENTS_KEY"}, "certificate": {"env": "PAYMENTS_CERT"}, "algorithm": "RS256", "assertion_lifetime": 120}}}),
        ("certificate-mismatch", "broker", {"certificates": {"other": {
            "private_key": {"env": "PAYMENTS_KEY"}, "certificate": {"env": "OTHER_CERT"}}}}),
        ("certificate-plan", "plan", {"certificates": {"a": {"certificate": {"env": "APP_CERT"}}, "b": {"certificate": {"env": "UNSET"}}}}),
        ("env-unset", "broker", {"issuer": {"url": url, "keys": [{"private_key": {"env": "UNSET"}, "use": "signing"}]}}),
        ("env-empty", "broker", {"issuer": {"url": url, "keys": [{"private_key": {"env": "EMPTY"}, "use": "signing"}]}}),
        ("typo", "broker", {"isuer": {}}),
    ]
    for name, mode, document in documents:
        write("broker_config", name, f"{mode}\n{json.dumps(document)}")
    write("broker_config", "duplicate-member", 'broker\n{"issuer": {}, "issuer": {}}')


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
            # seed-coincidence-*: inputs that made a leak check fire on a coincidence, kept by
            # hand (no test data writes them).
            if not seed.name.startswith("seed-coincidence-"):
                seed.unlink()
    tokens()
    jwks()
    policies()
    globs()
    expressions()
    entra()
    rbac()
    pipeline()
    vend_requests()
    identity_responses()
    broker_configs()
    token_mutation()
    component()
    for folder in sorted(CORPUS.iterdir()):
        print(f"{folder.name}: {len(list(folder.glob('seed-*')))} seeds")


if __name__ == "__main__":
    main()
