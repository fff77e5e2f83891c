"""The `verify` interface: Verifier, verify_gitlab_token, and every error category."""

from __future__ import annotations

import re

import pytest

from gitlab_azure_oidc import (GitlabClaims, KeyInfo, VerifiedToken, Verifier, VerifierConfig,
                               VerifyError, verify_gitlab_token)


def test_verifier_verifies_a_gitlab_token(stand_in, verifier):
    token = verifier.verify(stand_in.mint())
    assert isinstance(token, VerifiedToken)
    assert token.header.alg == "rs256" and token.header.typ == "JWT" and token.header.kid
    c = token.claims
    assert c.iss == stand_in.issuer and c.sub == stand_in.subject
    assert c.aud == [stand_in.audience]
    assert isinstance(c.gitlab, GitlabClaims)
    assert c.gitlab.project_path == "acme/payments" and c.gitlab.ref == "main"
    assert c.gitlab.ref_protected is True and c.gitlab.ref_type == "branch"
    assert c.raw["project_path"] == "acme/payments"
    assert re.fullmatch(r"[0-9a-f]{64}", token.fingerprint)


def test_verify_takes_an_explicit_now(stand_in, verifier):
    raw = stand_in.mint()
    iat = verifier.verify(raw).claims.iat
    assert verifier.verify(raw, now=iat).claims.iat == iat
    with pytest.raises(VerifyError) as e:
        verifier.verify(raw, now=iat + 10 * 3600)
    assert e.value.kind == "expired" and e.value.detail["now"] == iat + 10 * 3600


def test_expired_token_carries_its_time_window(stand_in, verifier):
    with pytest.raises(VerifyError) as e:
        verifier.verify(stand_in.mint(iat=900, nbf=900, exp=1000))
    err = e.value
    assert (err.kind, err.category, err.case) == ("expired", "verify", "expired")
    assert err.detail["claim_time"] == 1000 and err.detail["leeway"] == 60
    assert not err.refresh_jwks


def test_audience_mismatch(stand_in, verifier):
    with pytest.raises(VerifyError) as e:
        verifier.verify(stand_in.mint(aud=stand_in.issuer))
    assert e.value.kind == "audience-mismatch"
    assert e.value.detail == {"expected": [stand_in.audience], "found": [stand_in.issuer]}
    assert "id_tokens" in e.value.message


def test_issuer_near_miss(stand_in):
    config = VerifierConfig(stand_in.issuer + "/", [stand_in.audience])
    with pytest.raises(VerifyError) as e:
        verify_gitlab_token(stand_in.mint(), stand_in.jwks(), config)
    assert e.value.kind == "issuer-mismatch" and e.value.detail["near_miss"] == "trailing-slash"


def test_algorithm_not_in_allow_list(stand_in):
    config = VerifierConfig(stand_in.issuer, [stand_in.audience], algorithms=["ps256"])
    with Verifier(config, stand_in.jwks()) as v, pytest.raises(VerifyError) as e:
        v.verify(stand_in.mint())
    assert e.value.kind == "algorithm-not-allowed"
    assert e.value.detail == {"alg": "rs256", "allowed": ["ps256"]}


def test_tampered_signature_and_malformed_tokens(stand_in, verifier):
    token = stand_in.mint()
    with pytest.raises(VerifyError) as e:
        verifier.verify(token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB"))
    assert e.value.kind == "bad-signature" and e.value.detail["keys_tried"] == 1
    with pytest.raises(VerifyError) as e:
        verifier.verify("a.b")
    assert e.value.kind == "not-compact" and e.value.detail == 2


def test_max_age(stand_in):
    config = VerifierConfig(stand_in.issuer, [stand_in.audience], max_age=60)
    token = stand_in.mint()
    with Verifier(config, stand_in.jwks()) as v, pytest.raises(VerifyError) as e:
        v.verify(token, now=verify_gitlab_token(token, stand_in.jwks(), config).claims.iat + 600)
    assert e.value.kind == "too-old"


def test_unknown_kid_asks_for_a_refetch_then_replace_jwks_fixes_it(config):
    from standin import StandIn
    with StandIn(max_seconds=120) as own:  # its own issuer: rotation must not disturb others
        own_config = VerifierConfig(own.issuer, config.audiences)
        with Verifier(own_config, own.jwks()) as v:
            own.rotate()
            token = own.mint()
            with pytest.raises(VerifyError) as e:
                v.verify(token)
            assert e.value.kind == "unknown-kid" and e.value.refresh_jwks
            v.replace_jwks(own.jwks())
            assert v.verify(token).claims.sub == own.subject


def test_replace_jwks_refuses_bad_documents(verifier):
    with pytest.raises(VerifyError) as e:
        verifier.replace_jwks("not json")
    assert (e.value.category, e.value.kind) == ("jwks", "jwks-json")


@pytest.mark.parametrize("config,kind", [
    (VerifierConfig("", ["api://AzureADTokenExchange"]), "empty-issuer"),
    (VerifierConfig("https://gitlab.com", []), "no-audience"),
])
def test_config_errors(config, kind):
    with pytest.raises(VerifyError) as e:
        Verifier(config, '{"keys": []}')
    assert (e.value.category, e.value.kind, e.value.case) == ("config", kind, kind)


def test_jwks_errors(config):
    with pytest.raises(VerifyError) as e:
        Verifier(config, '{"keys": 1}')
    assert (e.value.category, e.value.kind) == ("jwks", "jwks-no-keys-array")


def test_keys_lists_usable_keys(verifier):
    usable, skipped = verifier.keys()
    assert usable and all(isinstance(k, KeyInfo) for k in usable)
    assert usable[0].kind == "RSA-2048" and skipped == []


def test_one_shot_verify_gitlab_token(stand_in, config):
    token = verify_gitlab_token(stand_in.mint(), stand_in.jwks(), config)
    assert token.claims.gitlab.project_id == "4242"
    with pytest.raises(VerifyError) as e:
        verify_gitlab_token(stand_in.mint(exp=None), stand_in.jwks(), config, now=None)
    assert (e.value.kind, e.value.detail) == ("claim-missing", "exp")


def test_error_str_never_contains_the_token(stand_in, verifier):
    token = stand_in.mint(aud="someone-else")
    with pytest.raises(VerifyError) as e:
        verifier.verify(token)
    assert token not in str(e.value) and token.split(".")[2] not in str(e.value.detail)
