//! The network and file side of the CLI: every document the component judges is read here,
//! bounded in size and time. HTTPS uses rustls with the system's roots (plus `--ca-file`);
//! plain HTTP is allowed only to loopback addresses (tests, local stand-ins).

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

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

fn check_scheme(url: &str) -> Result<(), String> {
    if url.starts_with("https://") || is_loopback_http(url) {
        Ok(())
    } else {
        Err(format!(
            "refusing {url}: only https:// URLs (or http:// on a loopback address) are allowed, \
             because a document fetched in clear text can be replaced in transit"
        ))
    }
}

/// An HTTP client with bounded timeouts, no redirects and the trust store chosen once.
pub(crate) struct Client {
    agent: ureq::Agent,
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
        let mut builder = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(10).min(timeout))
            .timeout(timeout)
            .redirects(0)
            .user_agent(concat!("gitlab-azure-oidc/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = ca_file {
            builder = builder.tls_config(Arc::new(tls_config(path)?));
        }
        Ok(Self { agent: builder.build() })
    }

    fn answer(result: Result<ureq::Response, ureq::Error>, url: &str) -> Result<Answer, String> {
        let response = match result {
            Ok(response) | Err(ureq::Error::Status(_, response)) => response,
            Err(ureq::Error::Transport(t)) => {
                let timed_out = t.kind() == ureq::ErrorKind::Io
                    && t.to_string().to_ascii_lowercase().contains("timed out");
                return Err(if timed_out {
                    format!("timeout: {url} did not answer in time ({t})")
                } else {
                    format!("cannot reach {url}: {t}")
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
        response
            .into_reader()
            .take(MAX_DOCUMENT_BYTES + 1)
            .read_to_end(&mut body)
            .map_err(|e| format!("cannot read the answer of {url}: {e}"))?;
        Ok(Answer { status, headers, body })
    }

    /// GETs a JSON document; a non-200 answer is an error.
    pub(crate) fn get_json(&self, url: &str) -> Result<String, String> {
        check_scheme(url)?;
        let answer =
            Self::answer(self.agent.get(url).set("Accept", "application/json").call(), url)?;
        if answer.status != 200 {
            return Err(format!("{url} answered HTTP {}", answer.status));
        }
        if answer.body.len() as u64 > MAX_DOCUMENT_BYTES {
            return Err(format!("{url} answered more than {MAX_DOCUMENT_BYTES} bytes"));
        }
        String::from_utf8(answer.body).map_err(|_| format!("{url} answered non-UTF-8 text"))
    }

    /// POSTs a request built by the component, as is.
    pub(crate) fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(String, String)],
        body: &str,
    ) -> Result<Answer, String> {
        check_scheme(url)?;
        let mut request = self.agent.request(method, url);
        for (name, value) in headers {
            request = request.set(name, value);
        }
        Self::answer(request.send_string(body), url)
    }
}

fn tls_config(ca_file: &str) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        // A system store may hold certificates rustls cannot use; skip those, keep the rest.
        let _ = roots.add(cert);
    }
    let pem =
        std::fs::read(ca_file).map_err(|e| format!("cannot read --ca-file {ca_file}: {e}"))?;
    let mut added = 0;
    for cert in rustls_pemfile::certs(&mut &pem[..]) {
        let cert = cert.map_err(|e| format!("--ca-file {ca_file}: {e}"))?;
        roots.add(cert).map_err(|e| format!("--ca-file {ca_file}: {e}"))?;
        added += 1;
    }
    if added == 0 {
        return Err(format!("--ca-file {ca_file} holds no PEM certificate"));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Reads a file, or fetches it when `source` is a URL.
pub(crate) fn document(client: &Client, source: &str) -> Result<String, String> {
    if source.starts_with("https://") || source.starts_with("http://") {
        client.get_json(source)
    } else {
        let file = std::fs::File::open(source).map_err(|e| format!("cannot open {source}: {e}"))?;
        read_bounded(file, source)
    }
}

/// The issuer's JWKS through its discovery document, as Entra itself fetches it.
pub(crate) fn discover_jwks(client: &Client, issuer: &str) -> Result<String, String> {
    let url = format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'));
    let discovery: serde_json::Value = serde_json::from_str(&client.get_json(&url)?)
        .map_err(|e| format!("{url} is not JSON: {e}"))?;
    let jwks_uri =
        discovery["jwks_uri"].as_str().ok_or_else(|| format!("{url} has no `jwks_uri`"))?;
    client.get_json(jwks_uri)
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
            .contains("refusing"));
    }

    #[test]
    fn reads_are_bounded() {
        let big = vec![b'a'; usize::try_from(MAX_DOCUMENT_BYTES + 1).unwrap()];
        assert!(read_bounded(&big[..], "x").unwrap_err().contains("larger than"));
        assert_eq!(read_bounded(&b"abc"[..], "x").unwrap(), "abc");
    }
}
