# --- Envoy soak and trap tests (examples/envoy/soak.py, tests/test_fail_reload.py) ---------------
# `make soak-envoy`: real Envoy (a gate and a broker, both through ECDS), the filter, the stand-ins
# and an echo upstream on loopback under a bounded mixed load through fault phases and a policy
# reload (SOAK_SECONDS, 300 by default; CI runs `soak-envoy-smoke`, 60 s). One summary line; fails
# on a wrong allow, a crash, a token leak or a failed reload step.
SOAK_SECONDS ?= 300
SOAK_SMOKE_SECONDS ?= 60
ENVOY_TRAP_TEST_WASM := $(CARGO_TARGET_DIR)/wasm32-wasip1/trap-test/gitlab_azure_oidc_envoy.wasm
export GITLAB_AZURE_OIDC_ENVOY_TRAP_TEST_WASM := $(ENVOY_TRAP_TEST_WASM)

.PHONY: soak-envoy soak-envoy-smoke envoy-filter-trap-test

soak-envoy: envoy-filter stand-in venv
	$(VENV)/bin/python examples/envoy/soak.py --seconds $(SOAK_SECONDS)

soak-envoy-smoke: envoy-filter stand-in venv
	$(VENV)/bin/python examples/envoy/soak.py --seconds $(SOAK_SMOKE_SECONDS)

# The filter with its test-only trap trigger, in its own profile folder (never the shipped module).
envoy-filter-trap-test: setup
	cargo build --profile trap-test --target wasm32-wasip1 -p gitlab-azure-oidc-envoy --features trap-test

test-envoy: envoy-filter-trap-test
