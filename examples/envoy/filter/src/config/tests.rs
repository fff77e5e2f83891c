use serde_json::json;

use super::*;
use crate::testutil::{self, config_json};

fn refused(config: serde_json::Value) -> String {
    parse(config.to_string().as_bytes()).expect_err("the configuration must be refused").to_string()
}

#[test]
fn minimal_remote_configuration_gets_the_defaults() {
    let config = testutil::parse(&config_json(|_| {}));
    let JwksSource::Remote(remote) = &config.jwks else { panic!("remote expected") };
    assert_eq!(remote.cluster, "gitlab");
    assert_eq!(remote.authority, "gitlab.example.com");
    assert_eq!(remote.path, "/oauth/discovery/keys");
    assert_eq!((remote.min_max_age, remote.max_max_age), (60, 86_400));
    assert_eq!(remote.max_lifetime, 3600);
    assert_eq!(config.token_header, HeaderSpec::default());
    assert_eq!(config.azure_header, HeaderSpec::default());
    let verifier = config.gate.verifier().expect("the filter verifies");
    assert_eq!(verifier.limits().verified_cache_entries, 1024);
    assert_eq!(config.azure_margin, 300);
    assert!(config.envoy_verify_signature, "Envoy's native check is used when it exists");
    assert_eq!(
        config.claim_headers,
        vec![
            ("x-gitlab-project-path".to_owned(), "project_path".to_owned()),
            ("x-gitlab-ref".to_owned(), "ref".to_owned())
        ]
    );
}

/// The token request the configured gate builds for an allowed job.
fn token_request(config: &FilterConfig) -> gitlab_azure_oidc::entra::TokenRequest {
    let mut gate = gitlab_azure_oidc::Gate::new(config.gate.clone());
    let jwks = testutil::jwks(&[&testutil::key()]);
    gate.install_jwks(gitlab_azure_oidc::Jwks::parse(jwks.as_bytes()).expect("jwks"));
    let token = testutil::token(&testutil::key(), json!({}));
    let admission = gate.admit(&token, testutil::NOW).expect("allowed");
    let rng = ring::rand::SystemRandom::new();
    gate.request(&admission, &token, testutil::NOW, &rng).expect("a request")
}

#[test]
fn allow_rule_targets_go_to_the_loopback_authority() {
    let config = testutil::parse(&config_json(|_| {}));
    let request = token_request(&config);
    assert_eq!(
        split_url(&request.url),
        Some(("127.0.0.1:9".to_owned(), "/contoso.onmicrosoft.com/oauth2/v2.0/token".to_owned()))
    );
    assert!(request.body.contains(testutil::CLIENT_ID));
}

#[test]
fn an_authority_host_sends_every_target_to_that_cloud() {
    // Without named scopes a target takes its cloud's Resource Manager.
    let config = testutil::parse(&config_json(|c| {
        c["entra"] = json!({"cluster": "entra", "authority_host": "login.microsoftonline.us"});
        c["policy"]["rules"][1]["azure"].as_object_mut().unwrap().remove("scopes");
    }));
    let request = token_request(&config);
    assert!(request.url.starts_with("https://login.microsoftonline.us/"), "{}", request.url);
    assert!(request.body.contains("usgovcloudapi.net"), "the cloud's own scope: {}", request.body);
    // The public cloud's scope named for a US Government authority is refused at load.
    let message = refused(config_json(|c| {
        c["entra"] = json!({"cluster": "entra", "authority_host": "login.microsoftonline.us"});
    }));
    assert!(message.contains("another cloud's Azure Resource Manager"), "{message}");
    let message = refused(config_json(|c| {
        c["entra"] = json!({"cluster": "entra", "authority_host": "login.example.com"});
    }));
    assert!(message.starts_with("`entra.authority_host`"), "{message}");
}

#[test]
fn policy_may_be_given_as_a_string() {
    let config = testutil::parse(&config_json(|c| {
        c["policy"] = json!(testutil::policy().to_string());
    }));
    assert_eq!(config.gate.policy().expect("a policy").rules().len(), 2);
}

#[test]
fn inline_jwks_is_parsed_at_load() {
    let jwks = testutil::jwks(&[&testutil::key()]);
    let config = testutil::parse(&config_json(|c| c["jwks"] = json!({ "inline": jwks })));
    assert!(matches!(config.jwks, JwksSource::Inline(_)));
    let message = refused(config_json(|c| c["jwks"] = json!({ "inline": {"nokeys": []} })));
    assert!(message.contains("jwks.inline"), "{message}");
}

#[test]
fn jwks_needs_exactly_one_source() {
    assert!(refused(config_json(|c| c["jwks"] = json!({}))).contains("`jwks`"));
    let both = config_json(|c| c["jwks"] = json!({ "cluster": "g", "inline": {"keys": []} }));
    assert!(refused(both).contains("not both"));
}

#[test]
fn unknown_fields_are_refused_with_their_name() {
    let message = refused(config_json(|c| c["audience"] = json!("x")));
    assert!(message.contains("unknown field `audience`"), "{message}");
}

#[test]
fn not_json_is_refused() {
    assert!(matches!(parse(b"issuer: x"), Err(ConfigError::Json(_))));
    assert!(matches!(parse(b""), Err(ConfigError::Json(_))));
}

#[test]
fn missing_audience_is_refused_by_the_core() {
    let message = refused(config_json(|c| c["audiences"] = json!([])));
    assert!(message.contains("no audience"), "{message}");
}

#[test]
fn a_bad_policy_is_refused() {
    let message = refused(config_json(|c| c["policy"] = json!({"rules": [{"name": "x"}]})));
    assert!(message.starts_with("`policy`"), "{message}");
}

#[test]
fn a_target_entra_would_refuse_is_refused_at_load() {
    let message = refused(config_json(|c| {
        c["policy"]["rules"][1]["azure"]["client_id"] = json!("not-a-guid");
    }));
    assert!(message.contains("rule deploy-main"), "{message}");
}

#[test]
fn a_plain_http_authority_that_is_not_loopback_is_refused() {
    let message = refused(config_json(|c| {
        c["entra"]["insecure_authority_url"] = json!("http://entra.example.com");
    }));
    assert!(message.starts_with("`entra.insecure_authority_url`"), "{message}");
}

#[test]
fn claim_headers_must_be_header_names_other_than_the_token_headers() {
    let bad = config_json(|c| c["claim_headers"] = json!({"x y": "ref"}));
    assert!(refused(bad).contains("not a header name"));
    let token = config_json(|c| c["claim_headers"] = json!({"Authorization": "ref"}));
    assert!(refused(token).contains("token header"));
}

#[test]
fn token_headers_may_carry_the_bare_token() {
    let config = testutil::parse(&config_json(|c| {
        c["token_header"] = json!({"name": "X-GitLab-Token", "scheme": null});
    }));
    assert_eq!(config.token_header, HeaderSpec { name: "x-gitlab-token".to_owned(), scheme: None });
}

#[test]
fn zero_slots_and_silly_ticks_are_refused() {
    assert!(refused(config_json(|c| c["cache"] = json!({"azure_token_slots": 0})))
        .contains("azure_token_slots"));
    assert!(refused(config_json(|c| c["tick_ms"] = json!(1))).contains("tick_ms"));
}

#[test]
fn envoy_verify_signature_can_be_turned_off() {
    let config = testutil::parse(&config_json(|c| c["envoy_verify_signature"] = json!(false)));
    assert!(!config.envoy_verify_signature);
    assert!(
        refused(config_json(|c| c["envoy_verify_signature"] = json!("yes"))).contains("boolean")
    );
}

#[test]
fn the_audit_settings_have_defaults_and_bounds() {
    let config = testutil::parse(&config_json(|_| {}));
    assert!(!config.audit_every_request);
    assert_eq!(config.audit_summary_seconds, 5);
    let config = testutil::parse(&config_json(|c| {
        c["audit"] = json!({"every_request": true, "summary_seconds": 60});
    }));
    assert!(config.audit_every_request);
    assert_eq!(config.audit_summary_seconds, 60);
    for bad in [json!({"summary_seconds": 0}), json!({"summary_seconds": 3601})] {
        assert!(
            refused(config_json(|c| c["audit"] = bad.clone())).contains("audit.summary_seconds")
        );
    }
    assert!(refused(config_json(|c| c["audit"] = json!({"every_requests": true})))
        .contains("every_requests"));
}

#[test]
fn the_jwks_max_lifetime_is_bounded() {
    let config = testutil::parse(&config_json(|c| c["jwks"]["max_lifetime"] = json!(600)));
    let JwksSource::Remote(remote) = &config.jwks else { panic!("remote expected") };
    assert_eq!(remote.max_lifetime, 600);
    for bad in [0, 59, 86_401] {
        let message = refused(config_json(|c| c["jwks"]["max_lifetime"] = json!(bad)));
        assert!(message.starts_with("`jwks.max_lifetime`"), "{message}");
    }
}

fn broker(edit: impl FnOnce(&mut serde_json::Value)) -> Result<FilterConfig, ConfigError> {
    let env: std::collections::HashMap<String, String> =
        testutil::broker_env().into_iter().collect();
    let config = testutil::broker_json(edit).to_string();
    parse_with_backend(config.as_bytes(), &|name| env.get(name).cloned(), || None)
}

#[test]
fn a_broker_configuration_routes_vending_and_the_issuer_documents() {
    let config = broker(|_| {}).expect("a broker");
    assert_eq!(config.route("/token"), Route::Vend);
    assert_eq!(config.route("/token?kind=assertion"), Route::Vend);
    assert_eq!(config.route("/.well-known/openid-configuration"), Route::Discovery);
    assert_eq!(config.route("/openid/v1/jwks"), Route::Jwks);
    assert_eq!(config.route("/token/x"), Route::Proxy);
    assert_eq!(config.route("/"), Route::Proxy);
    let vending = config.vending.as_ref().expect("vending");
    assert!(vending.assertions);
    assert_eq!(vending.explain, Explain::Rules);
    assert_eq!(config.identity.as_ref().map(|i| i.cluster.as_str()), Some("azure-identity"));
    assert!(config.gate.binds(), "every allow rule has a broker credential");
    assert!(config.advisory_rules.is_empty());
    assert_eq!(config.advisory_notice(), None);
    let docs = config.issuer_documents.as_ref().expect("served by default");
    assert!(docs.jwks.contains(testutil::next_key().kid()), "the next key is published");
    assert!(!docs.jwks.contains("\"d\""), "public halves only");
}

#[test]
fn federated_rules_are_advisory_and_say_what_makes_them_binding() {
    let config = testutil::parse(&config_json(|_| {}));
    assert_eq!(config.advisory_rules, ["deploy-main"]);
    let notice = config.advisory_notice().expect("a notice");
    assert!(notice.contains("rule deploy-main: the federated credential is advisory"), "{notice}");
    assert!(notice.contains("give the rule a broker credential"), "{notice}");
    assert!(config.vending.is_none() && config.issuer_documents.is_none());
    assert_eq!(config.route("/token"), Route::Proxy, "no broker routes without a broker");
}

#[test]
fn broker_settings_that_cannot_work_are_refused_naming_the_field() {
    type Edit<'a> = &'a dyn Fn(&mut serde_json::Value);
    let cases: [(Edit<'_>, &str); 6] = [
        (&|c| c["vending"] = json!({"path": "token"}), "`vending.path`"),
        (&|c| c["vending"]["explain"] = json!("all"), "`vending.explain`"),
        (
            &|c| c["issuer_documents"] = json!({"jwks_path": "/.well-known/openid-configuration"}),
            "`issuer_documents.jwks_path`",
        ),
        (&|c| c["broker"] = json!([]), "`broker`"),
        (
            &|c| c["broker"]["issuer"]["url"] = json!("https://broker.example.com/"),
            "trailing slash",
        ),
        (&|c| c["audiences"] = json!(["api://AzureADTokenExchangeUSGov"]), "`audiences`"),
    ];
    for (edit, field) in cases {
        let error = broker(|c| edit(c)).expect_err("refused").to_string();
        assert!(error.contains(field), "{field}: {error}");
    }
    let without_issuer = broker(|c| {
        c["broker"].as_object_mut().map(|b| b.remove("issuer"));
        c["policy"]["rules"].as_array_mut().map(|r| r.remove(1));
        c["issuer_documents"] = json!({});
    });
    let error = without_issuer.expect_err("no documents to serve").to_string();
    assert!(error.contains("`issuer_documents`"), "{error}");
}
