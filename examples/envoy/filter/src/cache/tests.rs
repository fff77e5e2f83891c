use serde_json::json;

use super::*;
use crate::config::JwksSource;
use crate::testutil::{self, config_json};

#[test]
fn max_age_is_read_from_cache_control() {
    assert_eq!(cache_control_max_age("max-age=86400, public, must-revalidate"), Some(86_400));
    assert_eq!(cache_control_max_age("public, MAX-AGE = 60"), Some(60));
    assert_eq!(cache_control_max_age("no-store"), Some(0));
    assert_eq!(cache_control_max_age("public"), None);
    assert_eq!(cache_control_max_age("max-age=soon"), None);
}

#[test]
fn jwks_lifetime_is_bounded() {
    let config = testutil::parse(&config_json(|c| {
        c["jwks"] =
            json!({"cluster": "g", "min_max_age": 60, "max_max_age": 3600, "default_max_age": 300});
    }));
    let JwksSource::Remote(remote) = &config.jwks else { panic!("remote") };
    assert_eq!(jwks_lifetime(remote, Some("max-age=86400")), 3600);
    assert_eq!(jwks_lifetime(remote, Some("max-age=5")), 60);
    assert_eq!(jwks_lifetime(remote, Some("max-age=600")), 600);
    assert_eq!(jwks_lifetime(remote, None), 300);
}

#[test]
fn jwks_records_round_trip() {
    let record = JwksRecord { fetched_at: 1, expires_at: 2, jwks: "{\"keys\":[]}".to_owned() };
    assert_eq!(JwksRecord::decode(&record.encode()), Some(record));
    assert_eq!(JwksRecord::decode(b"garbage"), None);
}

#[test]
fn azure_slots_are_bounded_and_records_check_their_key() {
    let key = "ffffffff".repeat(8);
    assert_eq!(azure_slot(&key, 16), "gitlab-azure-oidc.azure.15");
    assert_eq!(azure_slot("zz", 16), "gitlab-azure-oidc.azure.0");
    let record = AzureRecord {
        key: key.clone(),
        use_until: 100,
        token: "t".to_owned(),
        expires_at: 400,
        token_type: "Bearer".to_owned(),
    };
    let bytes = record.encode();
    assert_eq!(AzureRecord::lookup(&bytes, &key, 99).map(|r| r.token), Some("t".to_owned()));
    assert_eq!(AzureRecord::lookup(&bytes, &key, 100), None);
    assert_eq!(AzureRecord::lookup(&bytes, "other", 99), None);
    assert_eq!(AzureRecord::lookup(b"{}", &key, 99), None);
}

#[test]
fn azure_tokens_are_kept_until_expiry_minus_the_margin() {
    assert_eq!(azure_use_until(4600, 300, 1000), Some(4300));
    assert_eq!(azure_use_until(1200, 300, 1000), None);
    assert_eq!(azure_use_until(100, 300, 1000), None);
}
