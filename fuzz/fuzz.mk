# --- Fuzzing (fuzz/, cargo-fuzz and libFuzzer; fuzz/README.md) -----------------------------------
# `make fuzz` runs every target for FUZZ_SECONDS each (60 by default), the component target
# through wasmtime included; `make fuzz-smoke` runs the core's targets briefly (CI: a target that
# no longer builds, or crashes at once, fails the build). Each prints, per target, executions,
# coverage and findings (crash artifacts under fuzz/artifacts/). cargo-fuzz is installed (pinned)
# when missing; it builds on the stable toolchain with RUSTC_BOOTSTRAP=1, AddressSanitizer on.
FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 10

.PHONY: fuzz fuzz-smoke fuzz-seeds

fuzz: component
	python3 fuzz/run.py --seconds $(FUZZ_SECONDS) --component

fuzz-smoke:
	python3 fuzz/run.py --seconds $(FUZZ_SMOKE_SECONDS)

# Rewrites the committed seeds (fuzz/corpus/*/seed-*) from the repository's test data.
fuzz-seeds:
	python3 fuzz/seeds.py
