//! Runs the GitLab and Entra stand-ins for tests written in other languages (Python, Node,
//! Envoy), which steer them over HTTP under `/_control/`.
//!
//! `stand-in --ready-file PATH [--max-seconds N]` writes one JSON line to PATH when both listen
//! on 127.0.0.1, then serves until killed or for at most N seconds (default 900), so a test that
//! forgets to stop it cannot leave it running.
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use serde_json::json;
use testkit::{RsaKey, AUDIENCE, CLIENT_ID, SUBJECT, TENANT};

fn main() {
    let mut args = std::env::args().skip(1);
    let mut ready_file = None;
    let mut max_seconds = 900u64;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--ready-file" => ready_file = args.next(),
            "--max-seconds" => {
                max_seconds = args.next().and_then(|s| s.parse().ok()).unwrap_or(900)
            }
            other => {
                eprintln!("stand-in: unknown argument {other}; usage: stand-in --ready-file PATH [--max-seconds N]");
                std::process::exit(2);
            }
        }
    }
    let (issuer, entra) = testkit::stand_ins(&RsaKey::fixture_2048());
    let ready = json!({
        "issuer": issuer.url(),
        "entra": entra.url(),
        "tenant": TENANT,
        "client_id": CLIENT_ID,
        "audience": AUDIENCE,
        "subject": SUBJECT,
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
