"""The runtime: versioned exports, a guest trap followed by a fresh instance, memory limits, and
resources dropped deterministically."""

from __future__ import annotations

import gc

import pytest

from conftest import DEMO_POLICY, send
from gitlab_azure_oidc import (Gate, GateConfig, GuestTrap, OidcError, Policy, Runtime, Verifier,
                               claim_table, default_runtime, verify_gitlab_token)


def test_exports_are_the_versioned_interfaces():
    rt = Runtime()
    names = list(rt._component.type.exports(rt._engine))
    assert names == ["gitlab-azure:oidc/verify@0.2.0", "gitlab-azure:oidc/gate@0.2.0",
                     "gitlab-azure:oidc/policy@0.2.0", "gitlab-azure:oidc/lint@0.2.0"]


def test_a_trap_is_followed_by_a_fresh_instance(stand_in, config):
    rt = Runtime(fuel=50_000_000)
    verifier = rt.verifier(config, stand_in.jwks())
    policy = rt.policy(DEMO_POLICY.read_text())
    raw = stand_in.mint()
    assert verifier.verify(raw).claims.sub == stand_in.subject
    assert rt.instances_created == 1

    rt.fuel = 1_000  # far too little for a signature check: the guest runs out of fuel
    with pytest.raises(GuestTrap) as e:
        verifier.verify(raw)
    assert e.value.kind == "guest-trap" and "fuel" in e.value.message
    assert not isinstance(e.value, OidcError)  # a trap is no judgement

    rt.fuel = 50_000_000
    token = verifier.verify(raw)  # rebuilt in a fresh instance from its config and JWKS
    assert token.claims.sub == stand_in.subject
    assert policy.decide(token).allow  # the policy too
    assert rt.instances_created == 2
    with pytest.raises(OidcError):  # and typed failures still work
        verifier.verify("a.b")
    assert rt.instances_created == 2


def test_a_gate_is_rebuilt_with_its_latest_keys_after_a_trap(entra, gate_config):
    rt = Runtime(fuel=50_000_000)
    gate = rt.gate(gate_config)
    gate.install_jwks(entra.jwks())
    raw = entra.mint()
    assert gate.admit(raw).fresh
    rt.fuel = 1_000
    with pytest.raises(GuestTrap):
        gate.admit(entra.mint())
    rt.fuel = 50_000_000
    admission = gate.admit(raw)  # a fresh instance: keys reinstalled, kept decisions gone
    assert admission.fresh and rt.instances_created == 2
    assert gate.finish(admission, *send(admission.request)).token_type == "Bearer"


def test_module_functions_survive_a_trap(stand_in, config):
    rt = Runtime(fuel=1_000)
    with pytest.raises(GuestTrap):
        verify_gitlab_token(stand_in.mint(), stand_in.jwks(), config, runtime=rt)
    rt.fuel = 50_000_000
    assert verify_gitlab_token(stand_in.mint(), stand_in.jwks(), config, runtime=rt).claims.iss == stand_in.issuer
    assert len(claim_table(runtime=rt)) > 30
    assert rt.instances_created == 2


def test_a_memory_limit_traps_and_the_runtime_stays_usable(stand_in, config):
    rt = Runtime(memory_limit=8 * 1024 * 1024)
    gate = rt.gate(GateConfig(config, policy=DEMO_POLICY.read_text()), stand_in.jwks())
    with pytest.raises(GuestTrap):  # 16 MiB do not fit: the guest's allocator gives up
        gate.admit("a." + "b" * (16 * 1024 * 1024) + ".c")
    assert gate.admit(stand_in.mint()).rule == "deploy-production"
    assert rt.instances_created == 2


def test_context_manager_drops_the_resource(stand_in, config):
    rt = Runtime()
    with rt.verifier(config, stand_in.jwks()) as v:
        assert v.keys()[0]
        handle = v._handle
    assert v._handle is None
    with pytest.raises(ValueError, match="closed"):
        v.verify(stand_in.mint())
    v.close()  # idempotent
    with pytest.raises(Exception):  # the guest handle is gone: using it again is refused
        rt._call("gitlab-azure:oidc/verify@0.2.0", "[method]verifier.keys", handle)


def test_unclosed_resources_are_dropped_on_the_next_call(stand_in, config, gate_config):
    rt = Runtime()
    for _ in range(25):
        Verifier(config, stand_in.jwks(), runtime=rt)  # never closed
        Gate(gate_config, runtime=rt)
    gc.collect()
    assert rt._pending_drops  # queued by finalizers, never dropped from inside the GC
    with Policy.from_file(DEMO_POLICY, runtime=rt):
        pass
    assert not rt._pending_drops


def test_default_runtime_is_shared():
    assert default_runtime() is default_runtime()
