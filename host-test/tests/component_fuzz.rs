//! The component fuzzed through wasmtime for a bounded time, in every `cargo test` (issue 16): the
//! `verify_token` seeds (fuzz/corpus; real and RFC tokens with their keys) and random mutations of
//! their tokens and key sets, through a `VerifierHandle`, compared with the native core. The
//! coverage-guided version is the `component` target of fuzz/ (`make fuzz`).
//!
//! COMPONENT_FUZZ_SECONDS bounds the time (default 8), COMPONENT_FUZZ_CASES the count (100 000).

use std::path::Path;
use std::time::{Duration, Instant};

use gitlab_azure_oidc::{Jwks, Verifier, VerifierConfig as NativeConfig};
use gitlab_azure_oidc_host::{config, Host, Limits, VerifierHandle};

struct Case {
    now: u64,
    issuer: String,
    audience: String,
    token: String,
    jwks: String,
}

fn seeds() -> Vec<Case> {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/verify_token");
    let mut paths: Vec<_> = std::fs::read_dir(&folder)
        .unwrap_or_else(|e| panic!("failed to read {}: {e}", folder.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    paths.sort();
    paths
        .iter()
        .filter_map(|path| {
            let text = String::from_utf8_lossy(&std::fs::read(path).unwrap()).into_owned();
            let mut fields = text.splitn(5, '\n');
            let mut next = || fields.next().unwrap_or_default().to_owned();
            let (now, issuer, audience, token, jwks) = (next(), next(), next(), next(), next());
            Some(Case { now: now.trim().parse().ok()?, issuer, audience, token, jwks })
        })
        .collect()
}

/// xorshift64*: deterministic, so a failure replays with the same seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n.max(1)).unwrap()).unwrap()
    }
}

/// One to three byte-level edits, biased toward the characters tokens and JSON are made of.
fn mutate(text: &str, rng: &mut Rng) -> String {
    const BYTES: &[u8] = b"._-=+/ \"{}[]:,0aAzZ9\\\0\xff";
    let mut bytes = text.as_bytes().to_vec();
    for _ in 0..=rng.below(3) {
        let at = rng.below(bytes.len() + 1);
        let byte = BYTES[rng.below(BYTES.len())];
        match rng.below(4) {
            0 if at < bytes.len() => bytes[at] = byte,
            1 if at < bytes.len() => {
                bytes.remove(at);
            }
            2 => bytes.insert(at, byte),
            _ if at < bytes.len() => bytes[at] ^= 1 << rng.below(8),
            _ => {}
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

#[test]
fn the_component_judges_fuzzed_tokens_and_keys_as_the_native_core_and_never_fails() {
    let seconds =
        std::env::var("COMPONENT_FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(8);
    let cases: usize =
        std::env::var("COMPONENT_FUZZ_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let host = Host::embedded(Limits::default()).expect("run `make component` before these tests");
    let seeds = seeds();
    assert!(seeds.len() >= 20, "the verify_token seeds are missing: {}", seeds.len());
    let mut rng = Rng(0x16_16_16_16);
    let (mut run, mut accepted, mut same_refusal) = (0, 0, 0);
    while run < cases && (run < seeds.len() || Instant::now() < deadline) {
        let seed = &seeds[run % seeds.len()];
        // The first pass is the seeds as they are; then mostly tokens mutated, sometimes keys.
        let (token, jwks) = match (run < seeds.len(), rng.below(5)) {
            (true, _) => (seed.token.clone(), seed.jwks.clone()),
            (false, 0) => (seed.token.clone(), mutate(&seed.jwks, &mut rng)),
            (false, _) => (mutate(&seed.token, &mut rng), seed.jwks.clone()),
        };
        run += 1;
        let Ok(native_config) =
            NativeConfig::builder(seed.issuer.clone()).audience(seed.audience.clone()).build()
        else {
            continue;
        };
        let context = || format!("case {run}: token {token:?}, JWKS {:.200}", jwks);
        let component = match VerifierHandle::new(
            &host,
            config(&seed.issuer, &[seed.audience.as_str()]),
            jwks.clone(),
        ) {
            Ok(component) => component,
            Err(e) => panic!("host error building a verifier: {e}; {}", context()),
        };
        let (native_jwks, mut component) = match (Jwks::parse(jwks.as_bytes()), component) {
            (Ok(n), Ok(c)) => (n, c),
            (Err(n), Err(c)) => {
                assert_eq!(n.kind(), c.kind, "JWKS refused differently; {}", context());
                continue;
            }
            (n, c) => panic!("JWKS: native {:?}, component {:?}; {}", n.err(), c.err(), context()),
        };
        let native = Verifier::new(native_config, native_jwks).verify(&token, seed.now);
        let answer = match component.verify(&token, seed.now) {
            Ok(answer) => answer,
            Err(e) => panic!("host error verifying: {e}; {}", context()),
        };
        match (&native, &answer) {
            (Ok(n), Ok(c)) => {
                assert_eq!(n.fingerprint, c.fingerprint, "{}", context());
                accepted += 1;
            }
            (Err(n), Err(c)) => {
                assert_eq!(
                    n.kind(),
                    c.kind,
                    "refused differently: {n} / {}; {}",
                    c.message,
                    context()
                );
                same_refusal += 1;
            }
            _ => panic!(
                "native {:?}, component {:?}; {}",
                native.as_ref().map(|_| ()),
                answer.as_ref().map(|_| ()),
                context()
            ),
        }
        // The same instance serves the next call.
        if let Err(e) = component.verify("", seed.now) {
            panic!("host error after a call: {e}");
        }
    }
    eprintln!("component fuzz: {run} cases in {seconds} s at most: {accepted} accepted, {same_refusal} refused alike");
    assert!(accepted > 0, "no seed verified: the seeds lost their keys or times");
}
