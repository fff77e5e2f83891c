"""The `verify` interface: Verifier, verify_gitlab_token, and every failure they checked."""

from __future__ import annotations

import re

import pytest

from gitlab_azure_oidc import (GitlabClaims, KeyInfo, OidcError, RegisteredClaims, VerifiedToken,
                               Verifier, VerifierConfig, verify_gitlab_token)


def test_verifier_verifies_a_gitlab_token(stand_in, verifier):
    token = verifier.verify(stand_in.mint())
    assert isinstance(token, VerifiedToken)
    assert token.header.alg == "rs256" and token.header.typ == "JWT" and token.header.kid
    c = token.claims
    assert isinstance(c, RegisteredClaims)
    assert c.iss == stand_in.issuer and c.sub == stand_in.subject
    assert c.aud == [stand_in.audience]
    assert isinstance(token.gitlab, GitlabClaims)
    assert token.gitlab.project_path == "acme/payments" and token.gitlab.ref == "main"
    assert token.gitlab.ref_protected is True and token.gitlab.ref_type == "branch"
    assert token.gitlab.runner_id == 12 and token.gitlab.user_identities[0].provider == "github"
    assert token.payload["project_path"] == "acme/payments" and token.payload["jti"] == c.jti
    assert re.fullmatch(r"[0-9a-f]{64}", token.fingerprint)


def test_claims_the_table_does_not_name_stay_in_the_payload(stand_in, verifier):
    token = verifier.verify(stand_in.mint(future_claim="x", environment=None))
    assert token.payload["future_claim"] == "x"
    assert token.gitlab.environment is None and not hasattr(token.gitlab, "future_claim")


def test_verify_takes_an_explicit_now(stand_in, verifier):
    raw = stand_in.mint()
    iat = verifier.verify(raw).claims.iat
    assert verifier.verify(raw, now=iat).claims.iat == iat
    with pytest.raises(OidcError) as e:
        verifier.verify(raw, now=iat + 10 * 3600)
    assert e.value.kind == "expired" and f"verification time {iat + 10 * 3600}" in e.value.message


def test_expired_token_names_its_time_window(stand_in, verifier):
    with pytest.raises(OidcError) as e:
        verifier.verify(stand_in.mint(iat=900, nbf=900, exp=1000))
    err = e.value
    assert (err.kind, err.category, err.http_status) == ("expired", "token", 401)
    assert "expired at 1000" in err.message and "leeway 60 s" in err.message
    assert not err.refetch_jwks and not err.retryable


def test_audience_mismatch(stand_in, verifier):
    with pytest.raises(OidcError) as e:
        verifier.verify(stand_in.mint(aud=stand_in.issuer))
    assert e.value.kind == "audience-mismatch"
    assert f"`{stand_in.audience}` (found `{stand_in.issuer}`)" in e.value.message
    assert "id_tokens" in e.value.message


def test_issuer_near_miss(stand_in):
    config = VerifierConfig(stand_in.issuer + "/", [stand_in.audience])
    with pytest.raises(OidcError) as e:
        verify_gitlab_token(stand_in.mint(), stand_in.jwks(), config)
    assert e.value.kind == "issuer-mismatch" and "trailing slash" in e.value.message


def test_algorithm_not_in_allow_list(stand_in):
    config = VerifierConfig(stand_in.issuer, [stand_in.audience], algorithms=["ps256"])
    with Verifier(config, stand_in.jwks()) as v, pytest.raises(OidcError) as e:
        v.verify(stand_in.mint())
    assert e.value.kind == "algorithm-not-allowed"
    assert "`RS256` is not allowed (allowed: `PS256`)" in e.value.message


def test_tampered_signature_and_malformed_tokens(stand_in, verifier):
    token = stand_in.mint()
    with pytest.raises(OidcError) as e:
        verifier.verify(token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB"))
    assert e.value.kind == "bad-signature" and "under key `" in e.value.message
    with pytest.raises(OidcError) as e:
        verifier.verify("a.b")
    assert e.value.kind == "not-compact" and "(found 2)" in e.value.message


def test_max_age(stand_in):
    config = VerifierConfig(stand_in.issuer, [stand_in.audience], max_age=60)
    token = stand_in.mint()
    with Verifier(config, stand_in.jwks()) as v, pytest.raises(OidcError) as e:
        v.verify(token, now=verify_gitlab_token(token, stand_in.jwks(), config).claims.iat + 600)
    assert e.value.kind == "too-old"


def test_unknown_kid_asks_for_a_refetch_then_replace_jwks_fixes_it(config):
    from standin import StandIn
    with StandIn(max_seconds=120) as own:  # its own issuer: rotation must not disturb others
        own_config = VerifierConfig(own.issuer, config.audiences)
        with Verifier(own_config, own.jwks()) as v:
            own.rotate()
            token = own.mint()
            with pytest.raises(OidcError) as e:
                v.verify(token)
            assert e.value.kind == "unknown-kid" and e.value.refetch_jwks and e.value.hint
            v.replace_jwks(own.jwks())
            assert v.verify(token).claims.sub == own.subject


def test_replace_jwks_refuses_bad_documents(verifier):
    with pytest.raises(OidcError) as e:
        verifier.replace_jwks("not json")
    assert (e.value.category, e.value.kind) == ("jwks", "jwks-json")


@pytest.mark.parametrize("config,kind", [
    (VerifierConfig("", ["api://AzureADTokenExchange"]), "empty-issuer"),
    (VerifierConfig("https://gitlab.com", []), "no-audience"),
])
def test_config_errors(config, kind):
    with pytest.raises(OidcError) as e:
        Verifier(config, '{"keys": []}')
    assert (e.value.category, e.value.kind, e.value.http_status) == ("config", kind, 500)


def test_jwks_errors(config):
    with pytest.raises(OidcError) as e:
        Verifier(config, '{"keys": 1}')
    assert (e.value.category, e.value.kind) == ("jwks", "jwks-no-keys-array")


def test_keys_lists_usable_keys(verifier):
    usable, skipped = verifier.keys()
    assert usable and all(isinstance(k, KeyInfo) for k in usable)
    assert usable[0].kind == "RSA-2048" and skipped == []


def test_one_shot_verify_gitlab_token(stand_in, config):
    token = verify_gitlab_token(stand_in.mint(), stand_in.jwks(), config)
    assert token.gitlab.project_id == "4242"
    with pytest.raises(OidcError) as e:
        verify_gitlab_token(stand_in.mint(exp=None), stand_in.jwks(), config, now=None)
    assert e.value.kind == "claim-missing" and "`exp`" in e.value.message


def test_error_str_never_contains_the_token(stand_in, verifier):
    token = stand_in.mint(aud="someone-else")
    with pytest.raises(OidcError) as e:
        verifier.verify(token)
    assert token not in str(e.value) and token.split(".")[2] not in repr(vars(e.value))
