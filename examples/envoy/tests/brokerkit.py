"""The broker on Envoy, for the tests (`test_broker.py`), the demo (`demo_broker.py`) and the
benchmark: the filter answers `POST /token` and the issuer's documents itself, its keys come from
the VM's environment, and the Entra stand-in trusts only the broker.

The stand-in's app is set up as a broker's app would be in Entra: the federated credential that
trusts the GitLab issuer is removed (a job's own token gets AADSTS700211), and the app trusts
the broker's issuer URL with one subject per `issuer` rule, the broker's user-assigned managed
identity, and the broker's certificate."""

import json
import os
import socket

from harness import (ECDS_FILTER, REPO, TYPED_EXTENSION_CONFIG, EcdsFile, bootstrap, call, call_json,
                     plugin_config, wasm_config)

UAMI_CLIENT = "0b9a3c6e-8f1d-4e2a-9c7b-5d4e3f2a1b0c"
UAMI_PRINCIPAL = "7c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f"
ISSUER_SUBJECT = "gitlab-azure-oidc:rule:via-issuer"
SCOPE = "https://management.azure.com/.default"
TOKEN_EXCHANGE = "api://AzureADTokenExchange"
TESTDATA = REPO / "src/entra/testdata"
APP_KEY = (TESTDATA / "rsa-2048.key.pem").read_text()
APP_CERT = (TESTDATA / "rsa-2048.cert.pem").read_text()
IDENTITY_CLUSTER = "azure-identity"

# The git ref each broker credential's allow rule matches (the stand-in's tokens are `main` by
# default), and the rule's name.
REFS = {"issuer": "main", "managed-identity": "identity", "certificate": "certificate"}
RULES = {"issuer": "via-issuer", "managed-identity": "via-identity", "certificate": "via-certificate"}

# The variables of the broker's secrets, as Envoy passes them to the VM (`host_env_keys`: from
# Envoy's own environment, where a Kubernetes secret puts them).
SECRET_VARIABLES = ["BROKER_KEY_A", "BROKER_KEY_B", "APP_KEY", "APP_CERT"]


def new_key_pem():
    """A fresh RSA-2048 private key, PKCS#8 PEM (what the broker's issuer reads)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def pem_lines(pem):
    """The base64 lines of a PEM: what would show if it leaked."""
    return [line for line in pem.splitlines() if line and not line.startswith("-----")]


def free_port():
    """A free loopback port for Envoy's listener: the broker's URL is its issuer, and the policy
    must name it before Envoy starts."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def secret_environment(key_a, key_b):
    """The broker's secrets as environment variables (key A, key B, the app's certificate)."""
    return {"BROKER_KEY_A": key_a, "BROKER_KEY_B": key_b, "APP_KEY": APP_KEY, "APP_CERT": APP_CERT}


def trust_broker(stand_in, url):
    """Sets the stand-in's app up for a broker at `url`: no GitLab credential; the broker's
    issuer, its managed identity and its certificate instead."""
    entra = stand_in.entra_port
    call_json(entra, "/_control/distrust", {"client_id": stand_in.client_id, "issuer": stand_in.issuer})
    call_json(entra, "/_control/trust", {"client_id": stand_in.client_id, "issuer": url,
                                         "subject": ISSUER_SUBJECT})
    call_json(entra, "/_control/trust", {"client_id": stand_in.client_id, "managed_identity": {
        "client_id": UAMI_CLIENT, "principal_id": UAMI_PRINCIPAL}})
    call_json(entra, "/_control/trust", {"client_id": stand_in.client_id, "certificate": APP_CERT})


def entra_stats(stand_in):
    return call_json(stand_in.entra_port, "/_control/stats", method="GET")


def broker_policy(stand_in, only=None):
    """A binding policy: a deny rule, then one allow rule per broker credential (`only`: just
    that credential's rule)."""
    def azure(credential):
        return {"tenant": stand_in.tenant, "client_id": stand_in.client_id, "scopes": [SCOPE],
                "credential": credential}
    allow = {
        "issuer": {"name": RULES["issuer"], "effect": "allow",
                   "when": {"project_id": "4242", "ref": REFS["issuer"], "ref_protected": True},
                   "azure": azure("issuer")},
        "managed-identity": {"name": RULES["managed-identity"], "effect": "allow",
                             "when": {"project_id": "4242", "ref": REFS["managed-identity"]},
                             "azure": azure({"type": "managed-identity", "client_id": UAMI_CLIENT,
                                             "principal_id": UAMI_PRINCIPAL})},
        "certificate": {"name": RULES["certificate"], "effect": "allow",
                        "when": {"project_id": "4242", "ref": REFS["certificate"]},
                        "azure": azure({"type": "certificate", "name": "app-cert"})},
    }
    rules = [{"name": "no-merge-requests", "effect": "deny",
              "when": {"pipeline_source": "merge_request_event"}}]
    rules += [rule for name, rule in allow.items() if only in (None, name)]
    return {"rules": rules}


def broker_plugin(stand_in, url, signing="BROKER_KEY_A", published="BROKER_KEY_B", only=None,
                  identity="imds", **overrides):
    """The filter's configuration for a broker at `url`: the binding policy, the broker's keys
    from the VM's environment, vending at `/token`, the issuer's documents at their default
    paths, and the managed identity endpoint (the stand-in's IMDS or App Service form) behind the
    `azure-identity` cluster."""
    managed_identity = ({"endpoint": "imds", "dangerous_url": f"{stand_in.entra}/metadata/identity/oauth2/token"}
                        if identity == "imds" else {"endpoint": "app-service"})
    config = plugin_config(
        stand_in,
        audiences=[url],
        policy=broker_policy(stand_in, only),
        broker={
            "issuer": {"url": url, "keys": [
                {"private_key": {"env": signing}, "use": "signing"},
                {"private_key": {"env": published}, "use": "published"}]},
            "managed_identity": managed_identity,
            "certificates": {"app-cert": {"private_key": {"env": "APP_KEY"},
                                          "certificate": {"env": "APP_CERT"}}},
        },
        vending={"path": "/token"},
        identity_endpoint={"cluster": IDENTITY_CLUSTER, "timeout_ms": 2000},
    )
    config.update(overrides)
    return config


def environment_variables(key_values=None):
    """`vm_config.environment_variables`: the secrets from Envoy's own environment
    (`host_env_keys`), plus `key_values` set in the configuration itself."""
    # Envoy refuses a name in both (`Key ... is duplicated`): `key_values` wins here.
    env = {"host_env_keys": [name for name in SECRET_VARIABLES if name not in (key_values or {})]}
    if key_values:
        env["key_values"] = key_values
    return env


def with_environment(typed_config, env, bodies=True):
    """The wasm filter's typed config with the VM's environment; `bodies`: Envoy hands the
    filter the body of a request whose headers it paused (`allow_on_headers_stop_iteration`,
    Envoy 1.35 and later), so the vending route reads a JSON or form body."""
    typed_config["config"]["vm_config"]["environment_variables"] = env
    if bodies:
        typed_config["config"]["allow_on_headers_stop_iteration"] = True
    return typed_config


def broker_bootstrap(stand_in, echo_port, plugin, port, key_values=None, bodies=True):
    """Envoy's bootstrap for the broker: its listener on `port` (the broker's URL), the wasm
    filter with the VM's environment, and the `azure-identity` cluster to the stand-in's identity
    endpoint."""
    clusters = {"upstream": echo_port, "gitlab": stand_in.issuer_port, "entra": stand_in.entra_port,
                IDENTITY_CLUSTER: stand_in.entra_port}
    boot = bootstrap(plugin, clusters)
    boot["static_resources"]["listeners"][0]["address"]["socket_address"]["port_value"] = port
    hcm = boot["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    with_environment(hcm["http_filters"][0]["typed_config"], environment_variables(key_values), bodies)
    return boot


class BrokerEcdsFile(EcdsFile):
    """An ECDS file whose wasm filter has the broker's VM environment (the same on every
    version, so Envoy keeps the VM and the new configuration only picks other variables)."""

    def __init__(self, directory, check=None, key_values=None):
        super().__init__(directory)
        self.check = check
        self.env = environment_variables(key_values)

    def write(self, plugin):
        if self.check:
            self.check(plugin)
        self.version += 1
        typed = with_environment(wasm_config(plugin, self.wasm), self.env)
        response = {"version_info": str(self.version), "resources": [
            {"@type": TYPED_EXTENSION_CONFIG, "name": ECDS_FILTER, "typed_config": typed}]}
        staged = self.path.with_name(self.path.name + ".next")
        staged.write_text(json.dumps(response, indent=1))
        os.replace(staged, self.path)


def vend(port, token=None, body=None, headers=None, path="/token", method="POST"):
    """One vending request: (status, headers, JSON body or text)."""
    headers = dict(headers or {})
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    data = None
    if body is not None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        headers.setdefault("content-type", "application/json")
    status, reply_headers, raw = call(port, path, headers, method, data)
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = raw.decode(errors="replace")
    return status, reply_headers, parsed


def straight_to_entra(stand_in, assertion):
    """What `az login --federated-token` does with the job's own token: a client-credentials
    request with the token as the client assertion. (status, JSON body)"""
    from urllib.parse import urlencode
    form = urlencode({"client_id": stand_in.client_id, "scope": SCOPE, "grant_type": "client_credentials",
                      "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                      "client_assertion": assertion})
    status, _, raw = call(stand_in.entra_port, f"/{stand_in.tenant}/oauth2/v2.0/token",
                          {"content-type": "application/x-www-form-urlencoded"}, "POST", form.encode())
    return status, json.loads(raw)


def verify_rs256(jws, jwks):
    """Verifies an RS256 JWS with Python's `cryptography` (independent of the filter's ring)
    against the key of its `kid` in `jwks`; returns the claims, or None."""
    import base64
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    def b64(part):
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))

    header_b64, payload_b64, signature_b64 = jws.split(".")
    header = json.loads(b64(header_b64))
    if header.get("alg") != "RS256":
        return None
    jwk = next((k for k in jwks["keys"] if k["kid"] == header.get("kid")), None)
    if jwk is None:
        return None
    public = rsa.RSAPublicNumbers(int.from_bytes(b64(jwk["e"]), "big"),
                                  int.from_bytes(b64(jwk["n"]), "big")).public_key()
    try:
        public.verify(b64(signature_b64), f"{header_b64}.{payload_b64}".encode(), padding.PKCS1v15(),
                      hashes.SHA256())
    except InvalidSignature:
        return None
    return json.loads(b64(payload_b64))


def documents(port):
    """The broker's discovery document and JWKS, as Entra fetches them."""
    status, _, discovery = vend(port, path="/.well-known/openid-configuration", method="GET")
    assert status == 200, discovery
    status, _, jwks = vend(port, path="/openid/v1/jwks", method="GET")
    assert status == 200, jwks
    return discovery, jwks


def kid_of(jws):
    import base64
    part = jws.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))["kid"]
