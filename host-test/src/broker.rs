//! `gitlab-azure-oidc exchange --broker URL`: the job side of a broker. The job sends its
//! GitLab ID token (whose `aud` is the broker's URL) to the broker, which verifies it, decides
//! with the operator's policy and answers with the Azure token, or with an assertion the job's
//! own tools redeem. Nothing is judged here: the broker's answer is printed, or its error turned
//! into the same error lines and exit codes as a local exchange.

use std::io::Write;
use std::time::Duration;

use serde_json::{json, Value};

use gitlab_azure_oidc_host::AccessToken;

use crate::exchange::{deliver, ExchangeArgs, Exchanged, Output};
use crate::exit::Exit;
use crate::fetch::{is_loopback_http, Client};
use crate::out;

/// The path of the vending route when `--broker` names only the broker's origin.
const DEFAULT_ROUTE: &str = "/token";
/// The longest `Retry-After` honoured before the single retry.
const MAX_RETRY_WAIT: u64 = 60;

pub(crate) fn command(args: &ExchangeArgs) -> Result<(), Exit> {
    let Some(broker) = args.broker.as_deref() else {
        return Err(Exit::usage("--broker URL is required here"));
    };
    if args.policy.is_some() || args.authority_url.is_some() {
        return Err(Exit::usage(
            "--policy and --authority-url are the broker's, not the job's: with --broker the \
             operator's policy decides; drop them",
        ));
    }
    let url = route(broker)?;
    let token = args.token.read(None)?;
    let mut body = serde_json::Map::new();
    if let [scope] = args.scopes.as_slice() {
        body.insert("scope".to_owned(), json!(scope));
    } else if args.scopes.len() > 1 {
        return Err(Exit::usage("--broker takes at most one --scope (a scope the rule grants)"));
    }
    if args.assertion_file.is_some() {
        body.insert("kind".to_owned(), json!("assertion"));
    }
    let mut say = |line: String| {
        if args.verbose {
            let _ = writeln!(std::io::stderr(), "{line}");
        }
    };
    say(format!("broker: POST {url} (the GitLab token as Authorization: Bearer, never printed)"));
    let client =
        Client::new(args.check.ca_file.as_deref(), Duration::from_secs(args.timeout.max(1)))
            .map_err(Exit::usage)?;
    let headers = vec![
        ("Authorization".to_owned(), format!("Bearer {token}")),
        ("Content-Type".to_owned(), "application/json".to_owned()),
        ("Accept".to_owned(), "application/json".to_owned()),
    ];
    let what = format!("--broker {broker}");
    let mut attempt = 0;
    let answer = loop {
        attempt += 1;
        let answer = client
            .send("POST", &url, &headers, &Value::Object(body.clone()).to_string())
            .map_err(|e| e.exit(&what))?;
        let retryable = answer.status == 429 || answer.status == 503;
        let wait = header(&answer.headers, "retry-after").and_then(|v| v.parse::<u64>().ok());
        match wait {
            Some(wait) if retryable && attempt == 1 && wait <= MAX_RETRY_WAIT => {
                say(format!("broker: HTTP {} (retrying once in {wait} s)", answer.status));
                std::thread::sleep(Duration::from_secs(wait));
            }
            _ => break answer,
        }
    };
    let document: Option<Value> = serde_json::from_slice(&answer.body).ok();
    if answer.status != 200 {
        return Err(refusal(answer.status, document.as_ref(), &url));
    }
    let document = document.ok_or_else(|| bad_answer(&url, "is not JSON"))?;
    match &args.assertion_file {
        Some(path) => write_assertion(args.output, path, &document, &url, &mut say),
        None => {
            let field = |name: &str| document[name].as_str().map(str::to_owned);
            let token =
                field("accessToken").ok_or_else(|| bad_answer(&url, "has no `accessToken`"))?;
            let expires_on = document["expires_on"]
                .as_u64()
                .ok_or_else(|| bad_answer(&url, "has no `expires_on`"))?;
            let tenant = field("tenant").unwrap_or_default();
            let token_type = field("tokenType").unwrap_or_else(|| "Bearer".to_owned());
            say(format!("broker: HTTP 200: {token_type} token for tenant {tenant}, expires at {expires_on} (never printed here)"));
            let expires_in = expires_on.saturating_sub(crate::unix_now());
            let access = AccessToken {
                token,
                token_type,
                expires_in,
                ext_expires_in: None,
                expires_at: expires_on,
            };
            deliver(args, &Exchanged { access, tenant, gitlab_expires_at: None })
        }
    }
}

/// The vending route: `URL/token` when `URL` is an origin (no path), `URL` itself otherwise.
/// Only `https://`, or `http://` on loopback: the request carries the job's token.
pub(crate) fn route(broker: &str) -> Result<String, Exit> {
    if !(broker.starts_with("https://") || is_loopback_http(broker)) {
        return Err(Exit::usage(format!(
            "--broker {broker}: only https:// (or http:// on a loopback address), because the \
             request carries the job's token"
        )));
    }
    let rest = broker.split_once("://").map_or("", |(_, rest)| rest);
    Ok(match rest.find('/') {
        Some(i) if rest.get(i..).is_some_and(|path| path != "/") => broker.to_owned(),
        _ => format!("{}{DEFAULT_ROUTE}", broker.trim_end_matches('/')),
    })
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim())
}

fn bad_answer(url: &str, what: &str) -> Exit {
    Exit::Refused {
        kind: "bad-answer".into(),
        message: format!("{url}: the broker's answer {what}"),
        hint: Some("check --broker: it must name the broker's vending route".into()),
    }
}

/// The broker's error JSON (`error`, `message`, `hint`, and Entra's codes when Entra refused)
/// as the same error line a local exchange prints.
fn refusal(status: u16, document: Option<&Value>, url: &str) -> Exit {
    let text = |name: &str| document.and_then(|d| d[name].as_str()).map(str::to_owned);
    match text("error") {
        Some(kind) => {
            let mut message = text("message").unwrap_or_else(|| format!("HTTP {status}"));
            if let Some(codes) = document.and_then(|d| d["aadsts"].as_array()) {
                let codes: Vec<String> = codes.iter().map(|c| format!("AADSTS{c}")).collect();
                if !codes.is_empty() && !message.contains("AADSTS") {
                    message = format!("{message} ({})", codes.join(", "));
                }
            }
            let hint = text("hint").or_else(|| audience_hint(&kind));
            Exit::Refused {
                kind,
                message: format!("the broker refused (HTTP {status}): {message}"),
                hint,
            }
        }
        None => Exit::Refused {
            kind: "broker-error".into(),
            message: format!("{url} answered HTTP {status} without an error document"),
            hint: Some("check --broker and the broker's logs".into()),
        },
    }
}

/// The hint for a token refused for its audience: the job's `id_tokens:` must name the broker.
fn audience_hint(kind: &str) -> Option<String> {
    (kind == "audience-mismatch").then(|| {
        "set the job's id_tokens audience to the broker's URL (id_tokens: GITLAB_OIDC_TOKEN: aud: \
         https://broker.example.com); a token for api://AzureADTokenExchange is refused by design"
            .to_owned()
    })
}

/// Writes the vended assertion to `path` (0600, via a temporary file renamed over it) and
/// prints what the job's tools need.
fn write_assertion(
    output: Output,
    path: &str,
    document: &Value,
    url: &str,
    say: &mut dyn FnMut(String),
) -> Result<(), Exit> {
    let assertion = document["assertion"]
        .as_str()
        .filter(|a| a.split('.').count() == 3)
        .ok_or_else(|| bad_answer(url, "has no `assertion`"))?;
    let expires_on = document["expires_on"].as_u64().unwrap_or_default();
    let field = |name: &str| document[name].as_str().unwrap_or_default().to_owned();
    crate::files::write_atomically(std::path::Path::new(path), assertion.as_bytes(), 0o600)
        .map_err(|e| Exit::usage(format!("cannot write --assertion-file {path}: {e}")))?;
    say(format!(
        "broker: assertion for {} written to {path}, expires at {expires_on} (never printed here)",
        field("subject")
    ));
    let (tenant, client_id, authority) = (field("tenant"), field("clientId"), field("authority"));
    match output {
        Output::Token => out::line(path)?,
        Output::Json => out::json(&json!({
            "assertionFile": path,
            "expiresOn": crate::time::az_local(expires_on),
            "expires_on": expires_on,
            "tenant": tenant,
            "clientId": client_id,
            "authority": authority,
        }))?,
        Output::Env | Output::Dotenv => {
            // Where Azure Identity, Terraform (azurerm/azuread) and az read the assertion.
            let mut pairs = vec![
                ("AZURE_FEDERATED_TOKEN_FILE", path),
                ("AZURE_CLIENT_ID", client_id.as_str()),
                ("AZURE_TENANT_ID", tenant.as_str()),
                ("ARM_OIDC_TOKEN_FILE_PATH", path),
                ("ARM_CLIENT_ID", client_id.as_str()),
                ("ARM_TENANT_ID", tenant.as_str()),
                ("ARM_USE_OIDC", "true"),
            ];
            if !authority.is_empty() {
                pairs.push(("AZURE_AUTHORITY_HOST", authority.as_str()));
            }
            let lines: Vec<String> = pairs
                .iter()
                .map(|(name, value)| match output {
                    // GitLab keeps quotes in dotenv values as part of the value.
                    Output::Dotenv => format!("{name}={value}"),
                    _ => format!("export {name}='{}'", value.replace('\'', "'\\''")),
                })
                .collect();
            out::line(&lines.join("\n"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::route;

    #[test]
    fn the_route_is_token_below_an_origin_and_the_url_itself_otherwise() {
        let ok = |u: &str| route(u).unwrap();
        assert_eq!(ok("https://broker.example.com"), "https://broker.example.com/token");
        assert_eq!(ok("https://broker.example.com/"), "https://broker.example.com/token");
        assert_eq!(
            ok("https://broker.example.com/gitlab/vend"),
            "https://broker.example.com/gitlab/vend"
        );
        assert_eq!(ok("http://127.0.0.1:8080"), "http://127.0.0.1:8080/token");
        assert!(route("http://broker.example.com").is_err());
    }
}
