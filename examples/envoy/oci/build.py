#!/usr/bin/env python3
"""Writes the Envoy filter as an OCI image layout in the Wasm "compat" variant, reproducibly.

    python3 examples/envoy/oci/build.py --wasm FILTER.wasm --out target/oci \
        [--tag 0.1.0] [--revision COMMIT] [--source URL]

The layout (`oci-layout`, `index.json`, `blobs/sha256/...`) holds one image:

- one layer, `application/vnd.oci.image.layer.v1.tar+gzip`, a tar holding exactly `plugin.wasm`
  (mtime 0, uid/gid 0, no user or group names, mode 0644), gzip-compressed at level 9 with
  mtime 0 and no file name;
- an image config, `application/vnd.oci.image.config.v1+json`, with no timestamp;
- a manifest, `application/vnd.oci.image.manifest.v1+json`, with the annotation
  `module.wasm.image/variant: compat` (solo-io/wasm spec/spec-compat.md) and, when given, the
  commit as `org.opencontainers.image.revision`.

This is what Istio's puller (pkg/wasm/imagefetcher.go) and Envoy Gateway read: an OCI manifest,
not an index; the last layer of type `application/vnd.oci.image.layer.v1.tar+gzip`; in it, the
entry whose base name is `plugin.wasm`. It is not the single-layer
`application/vnd.module.wasm.content.layer.v1+wasm` format, which Envoy-based pullers reject.

The same module, tag, revision and source give byte-identical blobs, so the same digests, on
every build. Only the standard library is used; the gzip stream comes from the zlib Python links,
and zlib's level-9 output has been stable for years, but a different deflate (zlib-ng) would
give other layer bytes: compare digests built with the same Python.

Prints the manifest digest (what `oci://...@sha256:` pins, and what Istio's and Envoy Gateway's
`sha256` for an image is compared with), the layer digest, and the module's SHA-256 (what
Envoy's `remote.sha256`, and Istio's or Envoy Gateway's `sha256` for an `http(s)://` URL, are
compared with). Also writes them as JSON next to the layout (`<out>/<name>.json`).
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import shutil
import sys
import tarfile
from pathlib import Path

NAME = "gitlab-azure-oidc-envoy"
MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
VARIANT_ANNOTATION = "module.wasm.image/variant"
WASM_MAGIC = b"\0asm"


def canonical_json(value):
    """JSON with sorted keys and no spaces: one byte string per value."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer_tar(module):
    """A tar holding exactly `plugin.wasm`, with nothing that depends on the machine or the time."""
    buffer = io.BytesIO()
    info = tarfile.TarInfo("plugin.wasm")
    info.size = len(module)
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        tar.addfile(info, io.BytesIO(module))
    return buffer.getvalue()


def gzip_bytes(data):
    """gzip at a fixed level with mtime 0 and no file name in the header."""
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, compresslevel=9, mtime=0) as stream:
        stream.write(data)
    return buffer.getvalue()


def build(module, tag, revision=None, source=None):
    """The image's blobs, by digest, and its descriptors. Pure: the same arguments give the same
    bytes."""
    if not module.startswith(WASM_MAGIC):
        raise ValueError("not a WebAssembly module (no \\0asm magic)")
    if module[4:8] != b"\x01\0\0\0":
        raise ValueError("not a core WebAssembly module (version 1): Envoy does not run components")
    tar = layer_tar(module)
    layer = gzip_bytes(tar)
    config = canonical_json({
        # The OCI image spec asks for GOARCH/GOOS values; Go names the WASI preview 1 target
        # wasm/wasip1. Pullers of Wasm plugins (Istio, Envoy Gateway) read a manifest, not an
        # index, so they never match on these.
        "architecture": "wasm",
        "os": "wasip1",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [sha256(tar)]},
    })
    annotations = {VARIANT_ANNOTATION: "compat", "org.opencontainers.image.title": NAME,
                   "org.opencontainers.image.version": tag}
    if revision:
        annotations["org.opencontainers.image.revision"] = revision
    if source:
        annotations["org.opencontainers.image.source"] = source
    manifest = canonical_json({
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": {"mediaType": CONFIG_MEDIA_TYPE, "digest": sha256(config), "size": len(config)},
        "layers": [{"mediaType": LAYER_MEDIA_TYPE, "digest": sha256(layer), "size": len(layer)}],
        "annotations": annotations,
    })
    index = canonical_json({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": MANIFEST_MEDIA_TYPE, "digest": sha256(manifest),
                       "size": len(manifest),
                       "annotations": {"org.opencontainers.image.ref.name": tag}}],
    })
    blobs = {sha256(b): b for b in (layer, config, manifest)}
    return {
        "blobs": blobs,
        "index": index,
        "manifest_digest": sha256(manifest),
        "layer_digest": sha256(layer),
        "config_digest": sha256(config),
        "module_sha256": hashlib.sha256(module).hexdigest(),
        "module_size": len(module),
        "tag": tag,
    }


def write_layout(image, directory):
    """Writes the layout into `directory`, replacing what was there."""
    directory = Path(directory)
    if directory.exists():
        shutil.rmtree(directory)
    (directory / "blobs/sha256").mkdir(parents=True)
    for digest, data in sorted(image["blobs"].items()):
        path = directory / "blobs/sha256" / digest.split(":", 1)[1]
        path.write_bytes(data)
        os.chmod(path, 0o644)
    (directory / "oci-layout").write_bytes(canonical_json({"imageLayoutVersion": "1.0.0"}))
    (directory / "index.json").write_bytes(image["index"])


def summary(image, directory):
    return {
        "layout": str(directory),
        "tag": image["tag"],
        "manifest_digest": image["manifest_digest"],
        "layer_digest": image["layer_digest"],
        "config_digest": image["config_digest"],
        "module_sha256": image["module_sha256"],
        "module_size": image["module_size"],
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wasm", required=True, help="the filter's .wasm (wasm32-wasip1 core module)")
    parser.add_argument("--out", required=True, help="the directory that receives the layout")
    parser.add_argument("--name", default=NAME, help=f"the layout's folder under --out (default {NAME})")
    parser.add_argument("--tag", default="latest", help="the tag named in index.json (default latest)")
    parser.add_argument("--revision", default=None, help="the source commit, as an annotation")
    parser.add_argument("--source", default=None, help="the source repository URL, as an annotation")
    args = parser.parse_args(argv)

    image = build(Path(args.wasm).read_bytes(), args.tag, args.revision, args.source)
    directory = Path(args.out) / args.name
    write_layout(image, directory)
    info = summary(image, directory)
    (Path(args.out) / f"{args.name}.json").write_text(json.dumps(info, indent=1) + "\n")
    print(f"oci layout:      {directory} (tag {args.tag})")
    print(f"manifest digest: {info['manifest_digest']}   <- oci://REGISTRY/{NAME}@<this>; "
          "Istio/Envoy Gateway image sha256 (hex part)")
    print(f"layer digest:    {info['layer_digest']}")
    print(f"module sha256:   {info['module_sha256']}   <- Envoy remote.sha256; "
          "Istio/Envoy Gateway sha256 for an http(s) URL")
    return 0


if __name__ == "__main__":
    sys.exit(main())
