use super::*;

#[test]
fn gitlab_urls_pass_as_they_are() {
    for issuer in [
        "https://gitlab.com",
        "https://gitlab.example.com",
        "https://git.corp.example:8443/gitlab",
        "http://127.0.0.1:8080",
        "http://localhost:3000",
    ] {
        assert_eq!(check_issuer(issuer), Ok(()), "{issuer}");
    }
}

#[test]
fn near_misses_are_errors_with_the_fix() {
    let cases = [
        ("https://gitlab.com/", IssuerNearMiss::TrailingSlash, "https://gitlab.com"),
        ("https://gitlab.com//", IssuerNearMiss::TrailingSlash, "https://gitlab.com"),
        ("gitlab.com", IssuerNearMiss::Scheme, "https://gitlab.com"),
        ("http://gitlab.example.com", IssuerNearMiss::Scheme, "https://gitlab.example.com"),
        ("https://GitLab.com", IssuerNearMiss::Case, "https://gitlab.com"),
        ("HTTPS://gitlab.com", IssuerNearMiss::Case, "https://gitlab.com"),
        (" https://gitlab.com", IssuerNearMiss::Whitespace, "https://gitlab.com"),
        ("https://gitlab.com\n", IssuerNearMiss::Whitespace, "https://gitlab.com"),
        // Several at once: the first in the order whitespace, scheme, case, slash; one fix.
        (" GitLab.com/ ", IssuerNearMiss::Whitespace, "https://gitlab.com"),
    ];
    for (issuer, kind, fix) in cases {
        let error = check_issuer(issuer).unwrap_err();
        assert_eq!(
            error,
            IssuerError::NearMiss {
                issuer: issuer.to_owned(),
                near_miss: kind,
                fix: fix.to_owned()
            },
            "{issuer:?}"
        );
        let message = error.to_string();
        assert!(message.contains("AADSTS700211") && message.contains(fix), "{message}");
    }
}

#[test]
fn what_is_no_url_says_so() {
    for issuer in ["", "ftp://gitlab.com", "https://", "https://gitlab.com/?x=1", "https://a b"] {
        let error = check_issuer(issuer).unwrap_err();
        assert!(
            matches!(error, IssuerError::NotUrl { .. })
                || matches!(
                    error,
                    IssuerError::NearMiss { near_miss: IssuerNearMiss::Whitespace, .. }
                ),
            "{issuer:?}: {error:?}"
        );
    }
}

#[test]
fn flexible_credentials_only_for_the_documented_issuer_shapes() {
    for issuer in
        ["https://gitlab.com", "https://gitlab.example.com", "https://gitlab.acme-corp.ca"]
    {
        assert!(flexible_issuer_eligible(issuer), "{issuer}");
    }
    for issuer in [
        "https://git.corp.io",
        "https://gitlab.example.org",
        "https://gitlab.a.b.com",
        "https://gitlab.com/",
        "http://gitlab.com",
        "https://gitlab..com",
    ] {
        assert!(!flexible_issuer_eligible(issuer), "{issuer}");
    }
}
