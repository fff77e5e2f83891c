"""JSON Schema checks for the tests: the filter's configuration (schema/envoy-filter.schema.json,
which refers to schema/policy.schema.json) and the mesh manifests (the CRD schemas vendored in
examples/envoy/mesh/crds, read as JSON Schema as that folder's README says)."""

import functools
import json
from pathlib import Path

import jsonschema
import referencing
import yaml

REPO = Path(__file__).resolve().parents[3]
SCHEMA_DIR = REPO / "schema"
CRD_DIR = REPO / "examples/envoy/mesh/crds"
PLUGIN_SCHEMA = SCHEMA_DIR / "envoy-filter.schema.json"


@functools.cache
def plugin_validator():
    """A validator for the filter's configuration, with the policy schema it refers to."""
    schemas = [json.loads((SCHEMA_DIR / name).read_text())
               for name in ("envoy-filter.schema.json", "policy.schema.json")]
    registry = referencing.Registry().with_resources(
        (s["$id"], referencing.Resource.from_contents(s)) for s in schemas)
    jsonschema.Draft202012Validator.check_schema(schemas[0])
    return jsonschema.Draft202012Validator(schemas[0], registry=registry)


def plugin_config_errors(config):
    """The schema's complaints about a configuration (a dict, or its JSON text), as strings."""
    if isinstance(config, (str, bytes)):
        try:
            config = json.loads(config)
        except ValueError as e:
            return [f"not JSON: {e}"]
    return [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
            for e in sorted(plugin_validator().iter_errors(config), key=lambda e: list(e.absolute_path))]


def assert_plugin_config_valid(config, where="this configuration"):
    errors = plugin_config_errors(config)
    assert not errors, (f"{PLUGIN_SCHEMA.relative_to(REPO)} refuses {where}, which the filter is given: "
                        "when the configuration format changes, change the schema with it.\n  "
                        + "\n  ".join(errors))


# --- Kubernetes structural schemas as JSON Schema ----------------------------------------------

ELIDED = "x-vendored-elided"


def k8s_to_jsonschema(node):
    """One structural-schema node as JSON Schema (draft 2020-12)."""
    if not isinstance(node, dict):
        return node
    if ELIDED in node:
        # Not vendored: a manifest that sets it is refused, so nothing goes unchecked.
        return False
    out = {}
    for key, value in node.items():
        if key in ("properties",):
            out[key] = {name: k8s_to_jsonschema(child) for name, child in value.items()}
        elif key in ("items", "additionalProperties", "not"):
            out[key] = k8s_to_jsonschema(value)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [k8s_to_jsonschema(child) for child in value]
        elif key == "nullable" or key.startswith("x-kubernetes-") or key in ("format", "default"):
            continue
        else:
            out[key] = value
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if ("properties" in node and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")):
        # The API server would prune unknown fields silently; a test refuses them.
        out["additionalProperties"] = False
    return out


@functools.cache
def crd_validator(filename):
    """A validator for whole objects of the kind in `filename` (apiVersion, kind and metadata are
    checked by the caller, as the API server does before the schema)."""
    crd = yaml.safe_load((CRD_DIR / filename).read_text())
    schema = k8s_to_jsonschema(crd["openAPIV3Schema"])
    schema.setdefault("properties", {})
    for field, kind in (("apiVersion", "string"), ("kind", "string"), ("metadata", "object")):
        schema["properties"].setdefault(field, {"type": kind})
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def crd_errors(filename, document):
    return [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
            for e in crd_validator(filename).iter_errors(document)]
