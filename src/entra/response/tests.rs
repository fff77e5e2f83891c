use super::*;

const NOW: u64 = 1_760_000_000;
const TOKEN: &str =
    "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL21hbmFnZW1lbnQifQ.c2VjcmV0LXNpZw";

fn json_headers() -> Vec<(String, String)> {
    vec![("Content-Type".into(), "application/json; charset=utf-8".into())]
}

fn parse(status: u16, body: &str) -> Result<AccessToken, EntraError> {
    parse_token_response(status, &json_headers(), body.as_bytes(), NOW)
}

fn err(status: u16, body: &str) -> EntraError {
    parse(status, body).expect_err("answer must be refused")
}

fn entra(e: EntraError) -> EntraErrorResponse {
    match e {
        EntraError::Entra(e) => *e,
        other => panic!("not an Entra error: {other:?}"),
    }
}

/// The documented error body (entra-token-request.md section 1, facts 2.3), filled in.
const DOCUMENTED_ERROR: &str = r#"{"error":"invalid_scope","error_description":"AADSTS70011: The provided value for the input parameter 'scope' is not valid.\r\nTrace ID: 255d1aef-8c98-452f-ac51-23d051240864\r\nCorrelation ID: fb3d2015-bc17-4bb9-bb85-30c5cf1aaaa7\r\nTimestamp: 2016-01-09 02:02:12Z","error_codes":[70011],"timestamp":"2016-01-09 02:02:12Z","trace_id":"255d1aef-8c98-452f-ac51-23d051240864","correlation_id":"fb3d2015-bc17-4bb9-bb85-30c5cf1aaaa7","error_uri":"https://login.microsoftonline.com/error?code=70011"}"#;

#[test]
fn parses_entras_success_answer() {
    let body = format!(
        r#"{{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"{TOKEN}"}}"#
    );
    let t = parse(200, &body).unwrap();
    assert_eq!(t.token.secret(), TOKEN);
    assert_eq!(t.token_type, "Bearer");
    assert_eq!(t.expires_in, 3599);
    assert_eq!(t.ext_expires_in, Some(3599));
    assert_eq!(t.expires_at, NOW + 3599);
}

#[test]
fn expires_in_may_be_a_numeric_string() {
    let body = format!(
        r#"{{"token_type":"bearer","expires_in":"3599","ext_expires_in":"7199","access_token":"{TOKEN}"}}"#
    );
    let t = parse(200, &body).unwrap();
    assert_eq!((t.expires_in, t.ext_expires_in, t.expires_at), (3599, Some(7199), NOW + 3599));
    let body = format!(r#"{{"token_type":"Bearer","expires_in":60,"access_token":"{TOKEN}"}}"#);
    assert_eq!(parse(200, &body).unwrap().ext_expires_in, None);
}

#[test]
fn bad_durations_are_refused() {
    for value in [
        r#""-1""#,
        r#""3.5""#,
        "3.5",
        "-1",
        r#""""#,
        r#"" 60""#,
        "true",
        "[]",
        r#""99999999999999999999999""#,
    ] {
        let body =
            format!(r#"{{"token_type":"Bearer","expires_in":{value},"access_token":"{TOKEN}"}}"#);
        assert!(
            matches!(err(200, &body), EntraError::InvalidField { field: "expires_in", .. }),
            "{value}"
        );
    }
    let body = format!(r#"{{"token_type":"Bearer","access_token":"{TOKEN}"}}"#);
    assert!(matches!(err(200, &body), EntraError::InvalidField { field: "expires_in", .. }));
    let body = format!(
        r#"{{"token_type":"Bearer","expires_in":1,"ext_expires_in":"x","access_token":"{TOKEN}"}}"#
    );
    assert!(matches!(err(200, &body), EntraError::InvalidField { field: "ext_expires_in", .. }));
}

#[test]
fn a_success_without_a_bearer_access_token_is_refused() {
    assert_eq!(
        err(200, r#"{"token_type":"Bearer","expires_in":1}"#),
        EntraError::MissingAccessToken
    );
    assert_eq!(
        err(200, r#"{"token_type":"Bearer","expires_in":1,"access_token":""}"#),
        EntraError::MissingAccessToken
    );
    assert_eq!(
        err(200, r#"{"token_type":"Bearer","expires_in":1,"access_token":7}"#),
        EntraError::InvalidField { field: "access_token", expected: "a string" }
    );
    let body = format!(r#"{{"token_type":"pop","expires_in":1,"access_token":"{TOKEN}"}}"#);
    let e = err(200, &body);
    assert_eq!(e, EntraError::NotBearer { token_type: Some("pop".into()) });
    assert!(!e.to_string().contains(TOKEN));
    let body = format!(r#"{{"expires_in":1,"access_token":"{TOKEN}"}}"#);
    assert_eq!(err(200, &body), EntraError::NotBearer { token_type: None });
}

#[test]
fn the_access_token_never_prints() {
    let body = format!(r#"{{"token_type":"Bearer","expires_in":1,"access_token":"{TOKEN}"}}"#);
    let t = parse(200, &body).unwrap();
    assert_eq!(format!("{}", t.token), "[redacted]");
    assert_eq!(format!("{:?}", t.token), "SecretToken([redacted])");
    let debug = format!("{t:?}");
    assert!(!debug.contains(TOKEN) && !debug.contains("c2VjcmV0"), "{debug}");
    // Non-JSON success bodies are not quoted either: they might hold a token.
    let e = err(200, &format!("access_token={TOKEN}"));
    assert!(!e.to_string().contains("c2VjcmV0"), "{e}");
    assert!(!format!("{e:?}").contains("c2VjcmV0"), "{e:?}");
}

#[test]
fn parses_the_documented_error_answer() {
    let e = err(400, DOCUMENTED_ERROR);
    assert_eq!(e.kind(), "entra-error");
    assert!(!e.is_retryable());
    let text = e.to_string();
    let r = entra(e);
    assert_eq!(r.status, 400);
    assert_eq!(r.error, "invalid_scope");
    assert_eq!(r.error_codes, [70011]);
    assert_eq!(r.trace_id.as_deref(), Some("255d1aef-8c98-452f-ac51-23d051240864"));
    assert_eq!(r.correlation_id.as_deref(), Some("fb3d2015-bc17-4bb9-bb85-30c5cf1aaaa7"));
    assert_eq!(r.timestamp.as_deref(), Some("2016-01-09 02:02:12Z"));
    assert_eq!(r.error_uri.as_deref(), Some("https://login.microsoftonline.com/error?code=70011"));
    assert!(r.error_description.as_deref().unwrap().starts_with("AADSTS70011:"));
    assert!(text.contains("`invalid_scope` (HTTP 400, AADSTS70011, trace id 255d1aef"), "{text}");
    assert!(text.contains("AADSTS70011: The provided value"), "{text}");
    assert!(!text.contains("\r\n"), "{text}");
    assert!(text.ends_with(&r.hint()), "{text}");
    assert!(r.hint().contains("/.default"));
}

#[test]
fn federated_credential_mismatch_comes_back_as_401_invalid_client() {
    let body = r#"{"error":"invalid_client","error_description":"AADSTS7002137: No matching federated identity record found for presented assertion subject 'project_path:acme/payments:ref_type:branch:ref:dev'.","error_codes":[7002137]}"#;
    let r = entra(err(401, body));
    assert_eq!((r.status, r.error_codes.as_slice()), (401, &[7002137][..]));
    assert!(r.hint().contains("ref:dev"), "{}", r.hint());
}

#[test]
fn an_error_body_wins_over_a_200_status() {
    let r = entra(err(200, r#"{"error":"invalid_request","error_codes":[900144]}"#));
    assert_eq!(r.status, 200);
}

#[test]
fn temporarily_unavailable_is_retryable() {
    let e = err(400, r#"{"error":"temporarily_unavailable","error_codes":[]}"#);
    assert!(e.is_retryable());
    let e = err(400, r#"{"error":"invalid_grant","error_codes":[700024]}"#);
    assert!(!e.is_retryable());
}

#[test]
fn throttling_keeps_retry_after_in_both_forms() {
    let headers = |v: &str| vec![("retry-after".to_owned(), v.to_owned())];
    let e = parse_token_response(429, &headers(" 30 "), b"", NOW).unwrap_err();
    assert_eq!(
        e,
        EntraError::RateLimited {
            retry_after: Some(RetryAfter { raw: "30".into(), seconds: Some(30) }),
            entra: None
        }
    );
    assert!(e.is_retryable());
    assert_eq!(e.retry_after().and_then(|r| r.seconds), Some(30));
    assert!(e.to_string().contains("retry after 30 s"), "{e}");

    let date = "Wed, 21 Oct 2026 07:28:00 GMT";
    let e = parse_token_response(429, &headers(date), b"", NOW).unwrap_err();
    assert_eq!(e.retry_after(), Some(&RetryAfter { raw: date.into(), seconds: None }));
    assert!(e.to_string().contains(date), "{e}");

    let e = parse_token_response(429, &headers("99999999999999999999999"), b"", NOW).unwrap_err();
    assert_eq!(e.retry_after().and_then(|r| r.seconds), Some(u64::MAX));

    let e = parse_token_response(429, &[], DOCUMENTED_ERROR.as_bytes(), NOW).unwrap_err();
    assert_eq!(e.entra_response().map(|r| r.error.as_str()), Some("invalid_scope"));
    assert!(e.to_string().contains("retry with exponential backoff"), "{e}");
    assert_eq!(e.kind(), "rate-limited");
}

#[test]
fn server_errors_are_retryable_whatever_the_body() {
    for (status, body) in [
        (500, ""),
        (502, "<html><head><title>502 Bad Gateway</title></head></html>"),
        (503, r#"{"error":"temporarily_unavailable","trace_id":"t1"}"#),
        (504, "upstream timed out"),
    ] {
        let e = parse_token_response(status, &[], body.as_bytes(), NOW).unwrap_err();
        assert!(
            matches!(&e, EntraError::ServerError { status: s, .. } if *s == status),
            "{status}: {e:?}"
        );
        assert!(e.is_retryable());
        assert_eq!(e.kind(), "server-error");
    }
    let e = parse_token_response(
        503,
        &[("Retry-After".into(), "5".into())],
        br#"{"error":"temporarily_unavailable","trace_id":"t1"}"#,
        NOW,
    )
    .unwrap_err();
    assert_eq!(e.retry_after().and_then(|r| r.seconds), Some(5));
    assert_eq!(e.entra_response().and_then(|r| r.trace_id.as_deref()), Some("t1"));
    assert!(e.to_string().contains("trace id t1"), "{e}");
}

#[test]
fn html_pages_are_recognised_by_type_or_content() {
    let page = "<!DOCTYPE html>\n<html><head><title>\n Sign in\t</title></head><body/></html>";
    let e = parse_token_response(400, &[], page.as_bytes(), NOW).unwrap_err();
    assert_eq!(e, EntraError::HtmlPage { status: 400, title: Some("Sign in".into()) });
    assert!(e.to_string().contains("proxy"), "{e}");
    let html_type = vec![("content-type".to_owned(), "Text/HTML; charset=utf-8".to_owned())];
    let e = parse_token_response(403, &html_type, b"Forbidden", NOW).unwrap_err();
    assert_eq!(e, EntraError::HtmlPage { status: 403, title: None });
    let e = parse_token_response(200, &[], b"  <HTML><TITLE>x</TITLE>", NOW).unwrap_err();
    assert_eq!(e, EntraError::HtmlPage { status: 200, title: Some("x".into()) });
    assert!(!e.is_retryable());
}

#[test]
fn empty_and_non_json_bodies_get_their_own_errors() {
    assert_eq!(err(400, ""), EntraError::EmptyBody { status: 400 });
    assert_eq!(err(200, " \r\n "), EntraError::EmptyBody { status: 200 });
    match err(400, "Bad Request\u{7}") {
        EntraError::NotJson { status: 400, content_type, detail } => {
            assert_eq!(content_type.as_deref(), Some("application/json; charset=utf-8"));
            assert!(detail.contains("body starts \"Bad Request \""), "{detail}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(err(400, "[1,2]"), EntraError::NotJson { .. }));
    match err(200, r#"{"access_token":"a","access_token":"b"}"#) {
        EntraError::NotJson { detail, .. } => assert!(detail.contains("twice"), "{detail}"),
        other => panic!("{other:?}"),
    }
    let deep = format!("{}{}", "[".repeat(20), "]".repeat(20));
    match err(400, &deep) {
        EntraError::NotJson { detail, .. } => assert!(detail.contains("deeper"), "{detail}"),
        other => panic!("{other:?}"),
    }
    let e = parse_token_response(400, &[], &[0xff, 0xfe, b'{'], NOW).unwrap_err();
    assert!(matches!(e, EntraError::NotJson { content_type: None, .. }), "{e:?}");
}

#[test]
fn bodies_are_bounded() {
    let big = vec![b' '; MAX_RESPONSE_BYTES + 1];
    assert_eq!(
        parse_token_response(200, &[], &big, NOW).unwrap_err(),
        EntraError::BodyTooLarge {
            status: 200,
            size: MAX_RESPONSE_BYTES + 1,
            limit: MAX_RESPONSE_BYTES
        }
    );
}

#[test]
fn other_statuses_without_an_oauth_error_are_unexpected() {
    assert_eq!(err(302, "{}"), EntraError::UnexpectedStatus { status: 302 });
    assert_eq!(
        err(404, r#"{"message":"not found"}"#),
        EntraError::UnexpectedStatus { status: 404 }
    );
    assert_eq!(err(100, r#"{"error":1}"#), EntraError::UnexpectedStatus { status: 100 });
}

#[test]
fn error_kinds_are_distinct_and_stable() {
    let kinds: Vec<&str> = [
        EntraError::BodyTooLarge { status: 200, size: 2, limit: 1 },
        EntraError::EmptyBody { status: 200 },
        err(400, DOCUMENTED_ERROR),
        EntraError::HtmlPage { status: 200, title: None },
        EntraError::InvalidField { field: "expires_in", expected: "" },
        EntraError::MissingAccessToken,
        EntraError::NotBearer { token_type: None },
        EntraError::NotJson { status: 200, content_type: None, detail: String::new() },
        EntraError::RateLimited { retry_after: None, entra: None },
        EntraError::ServerError { status: 500, retry_after: None, entra: None },
        EntraError::UnexpectedStatus { status: 302 },
    ]
    .iter()
    .map(EntraError::kind)
    .collect();
    assert_eq!(
        kinds,
        [
            "body-too-large",
            "empty-body",
            "entra-error",
            "html-page",
            "invalid-field",
            "missing-access-token",
            "not-bearer",
            "not-json",
            "rate-limited",
            "server-error",
            "unexpected-status",
        ]
    );
}

#[test]
fn arbitrary_bytes_and_statuses_never_panic() {
    // A cheap deterministic fuzz of the parser: mutations of real answers and random bytes,
    // under statuses across the range; it must return, never panic.
    let seeds: Vec<Vec<u8>> = vec![
        format!(r#"{{"token_type":"Bearer","expires_in":"3599","access_token":"{TOKEN}"}}"#)
            .into_bytes(),
        DOCUMENTED_ERROR.as_bytes().to_vec(),
        b"<html><title>x</title></html>".to_vec(),
        Vec::new(),
    ];
    let statuses = [0, 100, 200, 201, 204, 302, 400, 401, 429, 500, 503, 599, 600, u16::MAX];
    let alphabet = b"{}[]\":,0123456789.-eE \\u\r\n\0<>/htmlTITLE\xff\xc3";
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in 0..4000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let mut bytes = seeds[i % seeds.len()].clone();
        for k in 0..(state % 4) {
            let pick = usize::try_from((state >> (8 * k)) & 0xff).unwrap();
            let byte = alphabet[pick % alphabet.len()];
            if bytes.is_empty() || state & (1 << (40 + k)) != 0 {
                let at = pick % (bytes.len() + 1);
                bytes.insert(at, byte);
            } else {
                let at = pick % bytes.len();
                bytes[at] = byte;
            }
        }
        if i % 7 == 0 {
            bytes.truncate(usize::try_from(state >> 50).unwrap() % (bytes.len() + 1));
        }
        let status = statuses[usize::try_from(state >> 32).unwrap() % statuses.len()];
        let headers = [(
            "Retry-After".to_owned(),
            String::from_utf8_lossy(&bytes[..bytes.len().min(8)]).into_owned(),
        )];
        if let Err(e) = parse_token_response(status, &headers, &bytes, state) {
            let _ = (e.to_string(), e.kind(), e.is_retryable(), e.retry_after());
        }
    }
}

/// Issue 16, found by the `entra_response` fuzz target: a truncated success answer under an error
/// status (a proxy rewrote it, or the connection dropped) was quoted in the `NotJson` error, access
/// token included. A body that names a token is never quoted; other bodies still are.
#[test]
fn a_broken_answer_that_names_a_token_is_not_quoted_in_the_error() {
    let truncated = format!(r#"{{"token_type":"Bearer","expires_in":3599,"access_token":"{TOKEN}"#);
    for status in [400, 401, 404, 302] {
        let e = err(status, &truncated);
        assert!(matches!(e, EntraError::NotJson { .. }), "{e:?}");
        for shown in [e.to_string(), format!("{e:?}")] {
            assert!(!shown.contains(TOKEN), "the token is shown: {shown}");
            assert!(!shown.contains("body starts"), "{shown}");
        }
    }
    // The fuzzer's input, as it found it: the token value cut short by a second member.
    let found = include_bytes!("testdata/fuzz-entra-response-token-in-excerpt.bin");
    let (head, body) = found.split_at(found.iter().position(|&b| b == b'{').unwrap());
    assert!(head.starts_with(b"400\n"));
    let e = parse_token_response(400, &json_headers(), body, NOW).unwrap_err();
    assert!(!e.to_string().contains("eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQi"), "{e}");
    // Bodies that name no token are still quoted, to show what answered.
    let e = err(400, "Bad Request (proxy)");
    assert!(e.to_string().contains("body starts"), "{e}");
}
