//! The network and file side of the CLI: every document the component judges is read here,
//! bounded in size and time. HTTPS uses rustls with the system's roots (plus `--ca-file`);
//! plain HTTP is allowed only to loopback addresses (tests, local stand-ins).

use std::fmt;
use std::io::Read;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::exit::Exit;

/// Why a document could not be fetched, with the URL.
#[derive(Debug)]
pub(crate) enum FetchError {
    /// The URL is not https:// (or http:// on loopback): never sent.
    Scheme(String),
    /// No connection, DNS failure, TLS failure.
    Unreachable { url: String, detail: String },
    /// No answer in time.
    Timeout { url: String, detail: String },
    /// An answer that is not what was asked for.
    Answer { url: String, detail: String },
}

impl FetchError {
    /// The error for the user: a refused scheme is a usage error (exit 2); the rest are
    /// refusals (exit 1) with a hint naming `what` to check (e.g. `--issuer or CI_SERVER_URL`).
    pub(crate) fn exit(self, what: &str) -> Exit {
        match self {
            Self::Scheme(message) => Exit::usage(message),
            Self::Unreachable { url, detail } => Exit::Refused {
                kind: "unreachable".into(),
                message: format!("cannot reach {url}: {detail}"),
                hint: Some(format!("check {what} and the network (proxy, DNS, firewall)")),
            },
            Self::Timeout { url, detail } => Exit::Refused {
                kind: "timeout".into(),
                message: format!("{url} did not answer in time ({detail})"),
                hint: Some(format!("retry later, or check {what}")),
            },
            Self::Answer { url, detail } => Exit::Refused {
                kind: "bad-answer".into(),
                message: format!("{url}: {detail}"),
                hint: Some(format!("check {what}")),
            },
        }
    }
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Scheme(message) => f.write_str(message),
            Self::Unreachable { url, detail } => write!(f, "cannot reach {url}: {detail}"),
            Self::Timeout { url, detail } => write!(f, "{url} did not answer in time ({detail})"),
            Self::Answer { url, detail } => write!(f, "{url}: {detail}"),
        }
    }
}

/// Largest document read from a file, stdin or URL: far above any JWKS, token or answer.
pub(crate) const MAX_DOCUMENT_BYTES: u64 = 1 << 20;

/// Reads at most [`MAX_DOCUMENT_BYTES`] from a reader; more is an error, not a truncation.
pub(crate) fn read_bounded(reader: impl Read, what: &str) -> Result<String, String> {
    let mut bytes = Vec::new();
    reader
        .take(MAX_DOCUMENT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {what}: {e}"))?;
    if bytes.len() as u64 > MAX_DOCUMENT_BYTES {
        return Err(format!("{what} is larger than {MAX_DOCUMENT_BYTES} bytes"));
    }
    String::from_utf8(bytes).map_err(|_| format!("{what} is not UTF-8"))
}

/// True for `http://` URLs on the loopback interface.
pub(crate) fn is_loopback_http(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else { return false };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host == "localhost"
        || host == "::1"
        || host.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
}

fn check_scheme(url: &str) -> Result<(), FetchError> {
    if url.starts_with("https://") || is_loopback_http(url) {
        Ok(())
    } else {
        Err(FetchError::Scheme(format!(
            "refusing {url}: only https:// URLs (or http:// on a loopback address) are allowed, \
             because a document fetched in clear text can be replaced in transit"
        )))
    }
}

/// An HTTP client with bounded timeouts, no redirects and the trust store chosen once.
///
/// The system's roots are loaded at the first https:// request, not before: reading them (some
/// hundred PEM files) costs more than the rest of a run that reads its JWKS from a file or talks
/// to loopback stand-ins.
pub(crate) struct Client {
    timeout: Duration,
    /// The certificates of `--ca-file`, read and checked up front.
    extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
    /// For plain http:// (loopback only): no trust store.
    plain: OnceLock<ureq::Agent>,
    /// For https://: the system's roots plus `extra_roots`.
    tls: OnceLock<ureq::Agent>,
}

/// An answer: status, headers and body (bounded).
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Client {
    /// A client trusting the system's roots, plus the PEM certificates in `ca_file`.
    pub(crate) fn new(ca_file: Option<&str>, timeout: Duration) -> Result<Self, String> {
        let extra_roots = ca_file.map(read_ca_file).transpose()?.unwrap_or_default();
        Ok(Self { timeout, extra_roots, plain: OnceLock::new(), tls: OnceLock::new() })
    }

    fn agent(&self, url: &str) -> &ureq::Agent {
        let build = |roots: rustls::RootCertStore| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let tls = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("ring supports the default protocol versions")
                .with_root_certificates(roots)
                .with_no_client_auth();
            ureq::AgentBuilder::new()
                .timeout_connect(Duration::from_secs(10).min(self.timeout))
                .timeout(self.timeout)
                .redirects(0)
                .user_agent(concat!("gitlab-azure-oidc/", env!("CARGO_PKG_VERSION")))
                .tls_config(Arc::new(tls))
                .build()
        };
        if url.starts_with("https://") {
            self.tls.get_or_init(|| {
                let mut roots = rustls::RootCertStore::empty();
                for cert in rustls_native_certs::load_native_certs().certs {
                    // A system store may hold certificates rustls cannot use; skip those.
                    let _ = roots.add(cert);
                }
                for cert in &self.extra_roots {
                    // Already checked by `read_ca_file`.
                    let _ = roots.add(cert.clone());
                }
                build(roots)
            })
        } else {
            self.plain.get_or_init(|| build(rustls::RootCertStore::empty()))
        }
    }

    fn answer(
        result: Result<ureq::Response, ureq::Error>,
        url: &str,
    ) -> Result<Answer, FetchError> {
        let response = match result {
            Ok(response) | Err(ureq::Error::Status(_, response)) => response,
            Err(ureq::Error::Transport(t)) => {
                let timed_out = t.kind() == ureq::ErrorKind::Io
                    && t.to_string().to_ascii_lowercase().contains("timed out");
                let (url, detail) = (url.to_owned(), t.to_string());
                return Err(if timed_out {
                    FetchError::Timeout { url, detail }
                } else {
                    FetchError::Unreachable { url, detail }
                });
            }
        };
        let status = response.status();
        let headers = response
            .headers_names()
            .into_iter()
            .filter_map(|name| response.header(&name).map(|v| (name.clone(), v.to_owned())))
            .collect();
        let mut body = Vec::new();
        response.into_reader().take(MAX_DOCUMENT_BYTES + 1).read_to_end(&mut body).map_err(
            |e| FetchError::Unreachable {
                url: url.to_owned(),
                detail: format!("the answer broke off: {e}"),
            },
        )?;
        Ok(Answer { status, headers, body })
    }

    /// GETs a JSON document; a non-200 answer, an HTML page or anything that is not JSON is an
    /// error that names the URL.
    pub(crate) fn get_json(&self, url: &str) -> Result<String, FetchError> {
        check_scheme(url)?;
        let answer =
            Self::answer(self.agent(url).get(url).set("Accept", "application/json").call(), url)?;
        let bad = |detail: String| FetchError::Answer { url: url.to_owned(), detail };
        if answer.status != 200 {
            return Err(bad(format!("answered HTTP {}", answer.status)));
        }
        if answer.body.len() as u64 > MAX_DOCUMENT_BYTES {
            return Err(bad(format!("answered more than {MAX_DOCUMENT_BYTES} bytes")));
        }
        let text =
            String::from_utf8(answer.body).map_err(|_| bad("answered non-UTF-8 text".into()))?;
        let start = text.trim_start();
        if start.starts_with('<') {
            let content_type = answer
                .headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("content-type"))
                .map_or("no content type", |(_, v)| v.as_str());
            return Err(bad(format!(
                "answered an HTML page ({content_type}), not JSON: a login page, a proxy or a \
                 wrong URL"
            )));
        }
        if serde_json::from_str::<serde_json::Value>(&text).is_err() {
            return Err(bad("answered something that is not JSON".into()));
        }
        Ok(text)
    }

    /// POSTs a request built by the component, as is.
    pub(crate) fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(String, String)],
        body: &str,
    ) -> Result<Answer, FetchError> {
        check_scheme(url)?;
        let mut request = self.agent(url).request(method, url);
        for (name, value) in headers {
            request = request.set(name, value);
        }
        Self::answer(request.send_string(body), url)
    }
}

/// The PEM certificates of `--ca-file`: at least one, each one usable as a trust anchor.
fn read_ca_file(ca_file: &str) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    let pem =
        std::fs::read(ca_file).map_err(|e| format!("cannot read --ca-file {ca_file}: {e}"))?;
    let mut certs = Vec::new();
    let mut check = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut &pem[..]) {
        let cert = cert.map_err(|e| format!("--ca-file {ca_file}: {e}"))?;
        check.add(cert.clone()).map_err(|e| format!("--ca-file {ca_file}: {e}"))?;
        certs.push(cert);
    }
    if certs.is_empty() {
        return Err(format!("--ca-file {ca_file} holds no PEM certificate"));
    }
    Ok(certs)
}

/// Reads a file, or fetches it when `source` is a URL.
pub(crate) fn document(client: &Client, source: &str, what: &str) -> Result<String, Exit> {
    if source.starts_with("https://") || source.starts_with("http://") {
        client.get_json(source).map_err(|e| e.exit(what))
    } else {
        read_file(source, what)
    }
}

/// Reads a local file, bounded; errors name the flag (`what`) and the path.
pub(crate) fn read_file(path: &str, what: &str) -> Result<String, Exit> {
    let file = std::fs::File::open(path)
        .map_err(|e| Exit::usage(format!("cannot open {what} {path}: {e}")))?;
    read_bounded(file, path).map_err(Exit::usage)
}

/// The issuer's JWKS through its discovery document, as Entra itself fetches it. `what` names
/// where the issuer came from, for the hint.
pub(crate) fn discover_jwks(client: &Client, issuer: &str, what: &str) -> Result<String, Exit> {
    let url = format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'));
    let text = client.get_json(&url).map_err(|e| e.exit(what))?;
    let discovery: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        FetchError::Answer { url: url.clone(), detail: format!("is not JSON: {e}") }.exit(what)
    })?;
    let jwks_uri = discovery["jwks_uri"].as_str().ok_or_else(|| {
        FetchError::Answer { url: url.clone(), detail: "has no `jwks_uri`".into() }.exit(what)
    })?;
    client.get_json(jwks_uri).map_err(|e| e.exit(what))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback_http_is_fetched() {
        assert!(is_loopback_http("http://127.0.0.1:8080/jwks"));
        assert!(is_loopback_http("http://127.1.2.3/jwks"));
        assert!(is_loopback_http("http://localhost/jwks"));
        assert!(is_loopback_http("http://[::1]:80/jwks"));
        assert!(!is_loopback_http("http://127.0.0.1.evil.example/jwks"));
        assert!(!is_loopback_http("http://gitlab.example.com/jwks"));
        assert!(!is_loopback_http("https://127.0.0.1/jwks"));
        let client = Client::new(None, Duration::from_secs(1)).unwrap();
        assert!(client
            .get_json("http://gitlab.example.com/oauth/discovery/keys")
            .unwrap_err()
            .to_string()
            .contains("refusing"));
    }

    #[test]
    fn reads_are_bounded() {
        let big = vec![b'a'; usize::try_from(MAX_DOCUMENT_BYTES + 1).unwrap()];
        assert!(read_bounded(&big[..], "x").unwrap_err().contains("larger than"));
        assert_eq!(read_bounded(&b"abc"[..], "x").unwrap(), "abc");
    }
}
