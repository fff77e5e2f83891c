"""The mesh manifests (examples/envoy/mesh): valid against the vendored CRD schemas, fail-closed,
pinned by digest, and with a plugin configuration the filter itself accepts in a real Envoy."""

import json
import re
import subprocess
import sys

import pytest
import yaml

from harness import ENVOY, REPO, WASM, bootstrap
from schemas import assert_plugin_config_valid, crd_errors

MESH = REPO / "examples/envoy/mesh"
CRDS = {
    ("extensions.istio.io/v1alpha1", "WasmPlugin"): "istio-wasmplugin-v1alpha1.yaml",
    ("networking.istio.io/v1", "ServiceEntry"): "istio-serviceentry-v1.yaml",
    ("networking.istio.io/v1", "DestinationRule"): "istio-destinationrule-v1.yaml",
    ("gateway.envoyproxy.io/v1alpha1", "EnvoyExtensionPolicy"): "envoy-gateway-envoyextensionpolicy-v1alpha1.yaml",
    ("gateway.envoyproxy.io/v1alpha1", "EnvoyPatchPolicy"): "envoy-gateway-envoypatchpolicy-v1alpha1.yaml",
}
MANIFESTS = sorted(p for p in MESH.rglob("*.yaml") if "crds" not in p.parts)
DIGEST = re.compile(r"@sha256:([0-9a-f]{64})$")
GATEWAY_API_KINDS = {"Gateway", "ListenerSet", "HTTPRoute", "GRPCRoute", "TCPRoute", "UDPRoute", "TLSRoute"}


def documents(path):
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def every_document():
    return [(path, doc) for path in MANIFESTS for doc in documents(path)]


def one(kind):
    [doc] = [d for _, d in every_document() if d["kind"] == kind]
    return doc


def test_the_manifests_are_all_there():
    kinds = sorted(d["kind"] for _, d in every_document())
    assert kinds == ["DestinationRule", "DestinationRule", "EnvoyExtensionPolicy", "EnvoyPatchPolicy",
                     "ServiceEntry", "ServiceEntry", "WasmPlugin"], kinds


@pytest.mark.parametrize("path, doc", every_document(),
                         ids=lambda v: v.name if hasattr(v, "name") else v.get("metadata", {}).get("name"))
def test_each_manifest_is_valid_against_its_vendored_crd(path, doc):
    key = (doc["apiVersion"], doc["kind"])
    assert key in CRDS, f"{path.name}: no vendored schema for {key}"
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", doc["metadata"]["name"])
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", doc["metadata"]["namespace"])
    errors = crd_errors(CRDS[key], doc)
    assert not errors, f"{path.name} {doc['kind']}/{doc['metadata']['name']}:\n  " + "\n  ".join(errors)


def test_the_schema_check_is_not_vacuous():
    """A misspelt field, a wrong enum, an elided subtree and a status are each refused."""
    plugin = one("WasmPlugin")
    for change, field in [({"failstrategy": "FAIL_CLOSE"}, "failstrategy"), ({"failStrategy": "FAIL_SHUT"}, "FAIL_SHUT"),
                          ({"sha256": "ABC"}, "ABC")]:
        bad = dict(plugin, spec=dict(plugin["spec"], **change))
        assert any(field in e for e in crd_errors(CRDS[("extensions.istio.io/v1alpha1", "WasmPlugin")], bad))
    rule = next(d for _, d in every_document() if d["kind"] == "DestinationRule")
    bad = dict(rule, spec=dict(rule["spec"], subsets=[{"name": "v1"}]))
    assert crd_errors(CRDS[("networking.istio.io/v1", "DestinationRule")], bad)
    assert crd_errors(CRDS[("networking.istio.io/v1", "DestinationRule")], dict(rule, status={}))


def image_digest(url, sha256):
    """The digest an image URL pins, checked against the `sha256` field beside it."""
    match = DIGEST.search(url)
    assert match, f"{url}: pin the image by digest (…@sha256:<manifest digest>)"
    assert sha256 == match.group(1), ("`sha256` must be the image's manifest digest, the one in the URL: "
                                      "Istio and Envoy Gateway compare it with the manifest's digest")
    return match.group(1)


def test_the_wasmplugin_fails_closed_pinned_by_digest():
    spec = one("WasmPlugin")["spec"]
    assert spec["phase"] == "AUTHN"
    assert spec["failStrategy"] == "FAIL_CLOSE"
    assert spec["type"] == "HTTP"
    assert spec["imagePullPolicy"] == "IfNotPresent"
    assert spec["url"].startswith("oci://")
    image_digest(spec["url"], spec["sha256"])
    # x-kubernetes-validations, by hand: at most one of selector, targetRef, targetRefs.
    assert sum(k in spec for k in ("selector", "targetRef", "targetRefs")) <= 1
    assert "vmConfig" not in spec, "the filter reads no environment variable; it holds no secret"


def test_the_extension_policy_fails_closed_pinned_by_digest():
    spec = one("EnvoyExtensionPolicy")["spec"]
    [wasm] = spec["wasm"]
    assert wasm["failOpen"] is False
    assert set(spec) == {"targetRefs", "wasm"}, "the filter alone in its policy (envoyproxy/gateway #7886)"
    # x-kubernetes-validations, by hand.
    assert wasm["code"]["type"] == "Image" and "image" in wasm["code"] and "http" not in wasm["code"]
    assert all(ref["group"] == "gateway.networking.k8s.io" and ref["kind"] in GATEWAY_API_KINDS
               for ref in spec["targetRefs"])
    image_digest(wasm["code"]["image"]["url"], wasm["code"]["image"]["sha256"])


def service_clusters():
    """Istio's cluster names for the ServiceEntries' TLS-originating ports, checked against the
    DestinationRules."""
    rules = {d["spec"]["host"]: d["spec"] for _, d in every_document() if d["kind"] == "DestinationRule"}
    names = {}
    for _, entry in every_document():
        if entry["kind"] != "ServiceEntry":
            continue
        spec = entry["spec"]
        assert spec["location"] == "MESH_EXTERNAL" and spec["resolution"] == "DNS"
        assert spec["exportTo"] == ["."]
        [host] = spec["hosts"]
        [port] = [p for p in spec["ports"] if p.get("targetPort") == 443]
        assert port["protocol"] == "HTTP"
        [setting] = [s for s in rules[host]["trafficPolicy"]["portLevelSettings"]
                     if s["port"]["number"] == port["number"]]
        assert setting["tls"] == {"mode": "SIMPLE", "sni": host, "subjectAltNames": [host]}
        assert rules[host]["exportTo"] == ["."]
        names[host] = f"outbound|{port['number']}||{host}"
    return names


def test_the_plugin_configurations_name_the_clusters_the_manifests_make():
    istio = one("WasmPlugin")["spec"]["pluginConfig"]
    clusters = service_clusters()
    assert istio["jwks"]["cluster"] == clusters["gitlab.com"]
    assert istio["entra"]["cluster"] == clusters["login.microsoftonline.com"]
    gateway = one("EnvoyExtensionPolicy")["spec"]["wasm"][0]["config"]
    patched = {p["operation"]["value"]["name"] for p in one("EnvoyPatchPolicy")["spec"]["jsonPatches"]
               if p["operation"]["op"] == "add" and p["operation"]["path"] == ""}
    assert {gateway["jwks"]["cluster"], gateway["entra"]["cluster"]} == patched
    # Apart from the cluster names, both are the shipped envoy.yaml's configuration.
    example = example_plugin_config()
    for config in (istio, gateway):
        same = json.loads(json.dumps(config))
        same["jwks"]["cluster"], same["entra"]["cluster"] = "gitlab", "entra"
        assert same == example


def example_plugin_config():
    envoy_yaml = yaml.safe_load((REPO / "examples/envoy/envoy.yaml").read_text())
    listener = envoy_yaml["static_resources"]["listeners"][0]
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    return json.loads(hcm["http_filters"][0]["typed_config"]["config"]["configuration"]["value"])


@pytest.mark.parametrize("which", ["istio", "envoy-gateway", "envoy.yaml"])
def test_the_plugin_configurations_satisfy_the_schema(which):
    config = {"istio": lambda: one("WasmPlugin")["spec"]["pluginConfig"],
              "envoy-gateway": lambda: one("EnvoyExtensionPolicy")["spec"]["wasm"][0]["config"],
              "envoy.yaml": example_plugin_config}[which]()
    assert_plugin_config_valid(config, f"the {which} configuration")


def envoy_validate(tmp_path, config):
    path = tmp_path / "envoy.json"
    path.write_text(json.dumps(config))
    result = subprocess.run([str(ENVOY), "--mode", "validate", "-c", str(path), "--disable-hot-restart"],
                            capture_output=True, text=True, timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "gitlab-azure-oidc: configured" in output, output[-3000:]
    return output


def test_the_istio_configuration_loads_in_envoy(tmp_path):
    """Envoy in validate mode runs the filter's on_configure: the pluginConfig as Istio passes it
    (JSON in a StringValue), with clusters under Istio's names."""
    plugin = one("WasmPlugin")["spec"]["pluginConfig"]
    clusters = {"upstream": 1, **{name: 1 for name in service_clusters().values()}}
    envoy_validate(tmp_path, bootstrap(plugin, clusters, wasm=WASM))


def test_the_envoy_gateway_configuration_loads_in_envoy_with_the_patched_clusters(tmp_path):
    """The EnvoyExtensionPolicy's config and the EnvoyPatchPolicy's clusters, as Envoy Gateway
    hands them to Envoy: Envoy accepts the clusters, and the filter its configuration."""
    plugin = one("EnvoyExtensionPolicy")["spec"]["wasm"][0]["config"]
    config = bootstrap(plugin, {"upstream": 1}, wasm=WASM)
    config["static_resources"]["clusters"] += [p["operation"]["value"]
                                               for p in one("EnvoyPatchPolicy")["spec"]["jsonPatches"]]
    envoy_validate(tmp_path, config)


def test_the_readme_pinning_command_yields_valid_pinned_manifests(tmp_path):
    """README, "Deploying to a mesh": the digest `make oci` printed goes into the manifests with
    one sed; the result still validates, and pins that image."""
    out = tmp_path / "oci"
    subprocess.run([sys.executable, str(REPO / "examples/envoy/oci/build.py"), "--wasm", str(WASM),
                    "--out", str(out), "--tag", "0.1.0"], check=True, capture_output=True, timeout=60)
    digest = json.loads((out / "gitlab-azure-oidc-envoy.json").read_text())["manifest_digest"].split(":")[1]
    for name in ("istio/wasmplugin.yaml", "envoy-gateway/extension-policy.yaml"):
        rendered = tmp_path / name.replace("/", "-")
        rendered.write_text((MESH / name).read_text())
        subprocess.run(["sed", "-i", "-e", f"s/0\\{{64\\}}/{digest}/g", "-e", "s|REGISTRY|registry.example.com/ci|g",
                        str(rendered)], check=True, timeout=10)
        [doc] = documents(rendered)
        errors = crd_errors(CRDS[(doc["apiVersion"], doc["kind"])], doc)
        assert not errors, errors
        spec = doc["spec"]
        url, sha = ((spec["url"], spec["sha256"]) if doc["kind"] == "WasmPlugin" else
                    (spec["wasm"][0]["code"]["image"]["url"], spec["wasm"][0]["code"]["image"]["sha256"]))
        assert image_digest(url, sha) == digest
        assert url == f"oci://registry.example.com/ci/gitlab-azure-oidc-envoy@sha256:{digest}"

