//! Runs the GitLab and Entra stand-ins for tests written in other languages (Python, Node,
//! Envoy), which steer them over HTTP under `/_control/`. `stand-in --help` lists everything.
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use serde_json::json;
use testkit::{RsaKey, AUDIENCE, CLIENT_ID, SUBJECT, TENANT};

const HELP: &str = "\
stand-in: loopback stand-ins for a GitLab instance (OIDC issuer) and Microsoft Entra.

USAGE:
    stand-in --ready-file PATH [--max-seconds N] [OPTIONS]

Writes one JSON line to PATH once both listen on 127.0.0.1 (issuer, entra, tenant, client_id,
audience, subject, entra_issuer, imds, identity_endpoint, managed_identity), then serves until
killed or for at most N seconds (default 900).

OPTIONS:
    --ready-file PATH          where to write the ready line (default: stdout)
    --max-seconds N            stop after N seconds (default 900)
    --no-gitlab-credential     the app does not trust the GitLab stand-in: only a broker can reach
                               it (a job's own token gets AADSTS700211)
    --managed-identity CLIENT_ID,PRINCIPAL_ID
                               register a user-assigned identity with the identity endpoint and
                               let the app trust it (issuer https://login.microsoftonline.com/
                               {tenant}/v2.0, subject PRINCIPAL_ID)
    --identity-header SECRET   require X-IDENTITY-HEADER: SECRET at the App Service endpoint
    --certificate FILE         register a PEM certificate on the app (certificate credential)
    -h, --help                 this text

ENTRA CONTROL (POST JSON to {entra}/_control/NAME):
    behaviour   {\"mode\": \"error\", \"code\": 70021} | {\"mode\": \"status\", \"status\": 429,
                \"retry_after\": \"3\"} | {\"mode\": \"delay\", \"ms\": 5000} | {\"mode\": \"garbage\"} |
                {\"mode\": \"normal\"}; optional \"times\": N
    trust       {\"client_id\": APP, \"issuer\": URL, \"subject\": SUB}: a federated credential
                (a broker issuer: Entra fetches URL/.well-known/openid-configuration and its JWKS,
                keeps the first 100 keys, AADSTS7000272 for an unknown kid, AADSTS50166 when
                unreachable)
                {\"client_id\": APP, \"managed_identity\": {\"client_id\": C, \"principal_id\": P}}
                {\"client_id\": APP, \"certificate\": PEM}
    distrust    {\"client_id\": APP, \"issuer\": URL} (that issuer's credentials) or
                {\"client_id\": APP} (every credential and certificate)
    identity    {\"header\": SECRET} and/or {\"client_id\": C, \"principal_id\": P}
    stats       (GET) token_requests, identity_requests, issuer_fetches, last_form,
                last_assertion (header and claims, never the signature)

IDENTITY ENDPOINT (on the Entra stand-in):
    GET {entra}/metadata/identity/oauth2/token?api-version=2018-02-01&resource=R&client_id=C
        with Metadata: true (IMDS); 400 Identity not found for an unknown C
    GET {entra}/msi/token?api-version=2019-08-01&resource=R&client_id=C
        with X-IDENTITY-HEADER (App Service, Container Apps)

ISSUER CONTROL (POST JSON to {issuer}/_control/NAME):
    mint        claim overrides (null removes), e.g. {\"aud\": \"https://broker.example.com\"}
    rotate      a new signing key
    down        {\"down\": true}: every endpoint answers 503
";

fn main() {
    let mut args = std::env::args().skip(1);
    let mut ready_file = None;
    let mut max_seconds = 900u64;
    let mut gitlab_credential = true;
    let mut identities = Vec::new();
    let mut identity_header = None;
    let mut certificates = Vec::new();
    let usage = |message: &str| -> ! {
        eprintln!("stand-in: {message}; see stand-in --help");
        std::process::exit(2)
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--ready-file" => ready_file = args.next(),
            "--max-seconds" => {
                max_seconds = args.next().and_then(|s| s.parse().ok()).unwrap_or(900)
            }
            "--no-gitlab-credential" => gitlab_credential = false,
            "--managed-identity" => match args.next().as_deref().and_then(|v| v.split_once(',')) {
                Some((client, principal)) => {
                    identities.push((client.to_owned(), principal.to_owned()))
                }
                None => usage("--managed-identity takes CLIENT_ID,PRINCIPAL_ID"),
            },
            "--identity-header" => identity_header = args.next(),
            "--certificate" => match args.next().map(std::fs::read_to_string) {
                Some(Ok(pem)) => certificates.push(pem),
                _ => usage("--certificate takes a readable PEM file"),
            },
            "-h" | "--help" => {
                print!("{HELP}");
                return;
            }
            other => usage(&format!("unknown argument {other}")),
        }
    }
    let (issuer, entra) = testkit::stand_ins(&RsaKey::fixture_2048());
    if !gitlab_credential {
        entra.distrust(CLIENT_ID, Some(&issuer.url()));
    }
    for (client, principal) in &identities {
        entra.trust_managed_identity(CLIENT_ID, client, principal);
    }
    if let Some(header) = &identity_header {
        entra.set_identity_header(header);
    }
    for pem in &certificates {
        if !entra.trust_certificate(CLIENT_ID, pem) {
            usage("--certificate is not a PEM RSA certificate");
        }
    }
    let ready = json!({
        "issuer": issuer.url(),
        "entra": entra.url(),
        "tenant": TENANT,
        "client_id": CLIENT_ID,
        "audience": AUDIENCE,
        "subject": SUBJECT,
        "entra_issuer": entra.entra_issuer(),
        "imds": entra.imds_url(),
        "identity_endpoint": entra.identity_endpoint(),
        "managed_identity": identities.first().map(|(c, p)| json!({"client_id": c, "principal_id": p})),
    })
    .to_string();
    match ready_file {
        Some(path) => {
            let tmp = format!("{path}.tmp");
            std::fs::write(&tmp, format!("{ready}\n"))
                .and_then(|()| std::fs::rename(&tmp, &path))
                .expect("write ready file");
        }
        None => println!("{ready}"),
    }
    let deadline = Instant::now() + Duration::from_secs(max_seconds);
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
}
