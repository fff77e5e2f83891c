"""`make oci`'s image: built reproducibly in the Wasm "compat" layout, then carried through a real
registry (Debian's docker-registry, the CNCF distribution registry, on loopback) by two standard
clients: pushed with one, pulled back by digest with the other, and checked."""

import gzip
import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from harness import REPO, WASM, call, stop, wait_for

BUILD = REPO / "examples/envoy/oci/build.py"
NAME = "gitlab-azure-oidc-envoy"
TAG = "0.1.0"
REVISION = "0123456789abcdef0123456789abcdef01234567"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
CONFIG = "application/vnd.oci.image.config.v1+json"


def build(out, wasm=WASM, revision=REVISION):
    """Runs the builder as `make oci` does; returns its summary (the JSON it writes)."""
    result = subprocess.run([sys.executable, str(BUILD), "--wasm", str(wasm), "--out", str(out), "--tag", TAG,
                             "--revision", revision], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    summary = json.loads((Path(out) / f"{NAME}.json").read_text())
    assert f"manifest digest: {summary['manifest_digest']}" in result.stdout, result.stdout
    assert f"module sha256:   {summary['module_sha256']}" in result.stdout, result.stdout
    return summary


def files(directory):
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(Path(directory).rglob("*")) if p.is_file()}


def blob(layout, digest):
    data = (Path(layout) / "blobs/sha256" / digest.split(":", 1)[1]).read_bytes()
    assert "sha256:" + hashlib.sha256(data).hexdigest() == digest, "a blob does not match its digest"
    return data


def check_image(manifest_bytes, get_blob, module):
    """What Istio's and Envoy Gateway's pullers need, checked on a manifest and its blobs."""
    manifest = json.loads(manifest_bytes)
    assert manifest["schemaVersion"] == 2
    assert manifest["mediaType"] == MANIFEST, "an image manifest, not an index (the pullers read one image)"
    assert manifest["annotations"]["module.wasm.image/variant"] == "compat"
    assert manifest["annotations"]["org.opencontainers.image.revision"] == REVISION
    assert len(manifest["layers"]) == 1
    layer_desc = manifest["layers"][0]
    assert layer_desc["mediaType"] == LAYER
    layer = get_blob(layer_desc["digest"])
    assert len(layer) == layer_desc["size"]
    assert manifest["config"]["mediaType"] == CONFIG
    config = json.loads(get_blob(manifest["config"]["digest"]))
    assert config["rootfs"] == {"type": "layers",
                                "diff_ids": ["sha256:" + hashlib.sha256(gzip.decompress(layer)).hexdigest()]}
    assert (config["architecture"], config["os"]) == ("wasm", "wasip1")
    assert not any("created" in key for key in config), "no timestamp in the config"
    with tarfile.open(fileobj=io.BytesIO(layer), mode="r:gz") as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == ["plugin.wasm"]
        member = members[0]
        assert (member.mtime, member.uid, member.gid, member.uname, member.gname, member.mode) == (0, 0, 0, "", "", 0o644)
        assert member.isreg()
        assert tar.extractfile(member).read() == module, "plugin.wasm is not the module"
    return manifest


def test_the_image_is_reproducible_and_in_the_compat_layout(tmp_path):
    module = WASM.read_bytes()
    first = build(tmp_path / "a")
    # The same module from another file, another time and another umask: the same bytes.
    copy = tmp_path / "copy.wasm"
    shutil.copy(WASM, copy)
    os.utime(copy, (1_000_000_000, 1_000_000_000))
    old_umask = os.umask(0o077)
    try:
        second = build(tmp_path / "b", wasm=copy)
    finally:
        os.umask(old_umask)
    layout_a, layout_b = tmp_path / "a" / NAME, tmp_path / "b" / NAME
    assert files(layout_a) == files(layout_b), "two builds of one module differ"
    for key in ("manifest_digest", "layer_digest", "config_digest", "module_sha256"):
        assert first[key] == second[key]
    assert first["module_sha256"] == hashlib.sha256(module).hexdigest()

    # The layout: oci-layout, an index naming the one manifest by tag, three blobs.
    assert json.loads((layout_a / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((layout_a / "index.json").read_text())
    assert [(m["mediaType"], m["digest"], m["annotations"]["org.opencontainers.image.ref.name"])
            for m in index["manifests"]] == [(MANIFEST, first["manifest_digest"], TAG)]
    assert len(list((layout_a / "blobs/sha256").iterdir())) == 3
    manifest = check_image(blob(layout_a, first["manifest_digest"]), lambda d: blob(layout_a, d), module)
    assert manifest["layers"][0]["digest"] == first["layer_digest"]

    # gzip: no timestamp, no file name (FLG has no FNAME bit), so nothing from the build machine.
    layer = blob(layout_a, first["layer_digest"])
    assert layer[:3] == b"\x1f\x8b\x08" and layer[3] & 0x08 == 0 and layer[4:8] == b"\0\0\0\0"

    # A different commit is a different image (the revision annotation), with the same layer.
    other = build(tmp_path / "c", revision="f" * 40)
    assert other["manifest_digest"] != first["manifest_digest"]
    assert other["layer_digest"] == first["layer_digest"]


def test_the_builder_refuses_a_component(tmp_path):
    """Envoy runs core modules; a component (version 0x0d, layer 1) must never be published."""
    component = tmp_path / "component.wasm"
    component.write_bytes(b"\0asm\x0d\0\x01\0")
    result = subprocess.run([sys.executable, str(BUILD), "--wasm", str(component), "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "not a core WebAssembly module" in result.stderr


# --- A real registry on loopback ---------------------------------------------------------------

REGISTRY = shutil.which("docker-registry") or "/usr/bin/docker-registry"
SKOPEO = shutil.which("skopeo") or "/usr/bin/skopeo"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def registry(tmp_path):
    """Debian's docker-registry on 127.0.0.1 (a free port, plain HTTP, no auth, storage in the
    test's directory); stopped at the end. Yields "127.0.0.1:PORT"."""
    for tool in (REGISTRY, SKOPEO):
        if not Path(tool).exists():
            pytest.fail(f"{tool} is missing: `make oci-tools` installs docker-registry and skopeo")
    process = None
    for _ in range(3):  # the port may be taken between the probe and the bind
        port = free_port()
        config = tmp_path / "registry.yml"
        config.write_text(json.dumps({
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(tmp_path / "registry-data")}},
            "http": {"addr": f"127.0.0.1:{port}", "secret": "loopback-test-only"},
        }))
        log = open(tmp_path / "registry.log", "wb")
        process = subprocess.Popen([REGISTRY, "serve", str(config)], stdin=subprocess.DEVNULL,
                                   stdout=log, stderr=subprocess.STDOUT)

        def up():
            if process.poll() is not None:
                return "exited"
            try:
                return call(port, "/v2/", timeout=2)[0] == 200
            except OSError:
                return False

        try:
            state = wait_for("the registry", up, timeout=20)
        except BaseException:
            stop(process)
            raise
        finally:
            log.close()
        if state is True:
            break
        stop(process)
        process = None
    assert process is not None, (tmp_path / "registry.log").read_text()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        stop(process)


def skopeo(tmp_path, *args):
    """skopeo with a policy file of our own (accept anything: the digest is what we check)."""
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
    result = subprocess.run([SKOPEO, "--policy", str(policy), *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_pushed_with_oras_pulled_by_digest_with_skopeo(tmp_path, registry):
    import oras.layout
    import oras.provider

    image = build(tmp_path / "built")
    layout = tmp_path / "built" / NAME
    client = oras.provider.Registry(hostname=registry, insecure=True)
    response = oras.layout.NewLayout(str(layout)).push_to_registry(client, f"{registry}/{NAME}:{TAG}", tag=TAG)
    assert response.headers["Docker-Content-Digest"] == image["manifest_digest"]

    reference = f"docker://{registry}/{NAME}@{image['manifest_digest']}"
    raw = skopeo(tmp_path, "inspect", "--tls-verify=false", "--raw", reference).encode()
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == image["manifest_digest"]
    pulled = tmp_path / "pulled"
    skopeo(tmp_path, "copy", "--src-tls-verify=false", "--preserve-digests", reference, f"oci:{pulled}:pulled")
    index = json.loads((pulled / "index.json").read_text())
    assert [m["digest"] for m in index["manifests"]] == [image["manifest_digest"]]
    check_image(blob(pulled, image["manifest_digest"]), lambda d: blob(pulled, d), WASM.read_bytes())
    assert files(pulled / "blobs") == files(layout / "blobs"), "the blobs changed on the way"


def test_pushed_with_skopeo_pulled_by_digest_with_oras(tmp_path, registry):
    import oras.provider

    image = build(tmp_path / "built")
    layout = tmp_path / "built" / NAME
    digest_file = tmp_path / "digest"
    skopeo(tmp_path, "copy", "--dest-tls-verify=false", "--preserve-digests", "--digestfile", str(digest_file),
           f"oci:{layout}:{TAG}", f"docker://{registry}/{NAME}:{TAG}")
    assert digest_file.read_text().strip() == image["manifest_digest"]

    client = oras.provider.Registry(hostname=registry, insecure=True)
    container = f"{registry}/{NAME}@{image['manifest_digest']}"
    response = client.do_request(f"http://{registry}/v2/{NAME}/manifests/{image['manifest_digest']}", "GET",
                                 headers={"Accept": MANIFEST})
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == MANIFEST
    assert "sha256:" + hashlib.sha256(response.content).hexdigest() == image["manifest_digest"]
    assert client.get_manifest(container)["annotations"]["module.wasm.image/variant"] == "compat"

    def get_blob(digest):
        data = client.get_blob(container, digest).content
        assert "sha256:" + hashlib.sha256(data).hexdigest() == digest
        return data

    check_image(response.content, get_blob, WASM.read_bytes())
