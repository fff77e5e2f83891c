//! Reading documents the component judges: files, standard input and HTTPS URLs, all bounded.

use std::io::Read;
use std::time::Duration;

/// Largest document read from a file, stdin or URL: far above any JWKS or token.
pub(crate) const MAX_DOCUMENT_BYTES: u64 = 1 << 20;

/// Reads at most [`MAX_DOCUMENT_BYTES`] from a reader; more is an error, not a truncation.
pub(crate) fn read_bounded(reader: impl Read, what: &str) -> Result<String, String> {
    let mut text = String::new();
    reader
        .take(MAX_DOCUMENT_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read {what}: {e}"))?;
    if text.len() as u64 > MAX_DOCUMENT_BYTES {
        return Err(format!("{what} is larger than {MAX_DOCUMENT_BYTES} bytes"));
    }
    Ok(text)
}

/// True for `http://` URLs on the loopback interface, which tests and local stand-ins use.
fn is_loopback_http(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else { return false };
    let host = rest.split(['/', '?']).next().unwrap_or("");
    let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
    matches!(host, "127.0.0.1" | "localhost" | "[::1]")
}

/// GETs a document over HTTPS (or plain HTTP on loopback only), bounded in size and time.
pub(crate) fn get(url: &str) -> Result<String, String> {
    if !url.starts_with("https://") && !is_loopback_http(url) {
        return Err(format!(
            "refusing to fetch {url}: only https:// URLs (or http:// on 127.0.0.1) are allowed, \
             because a JWKS fetched in clear text can be replaced in transit"
        ));
    }
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(5))
        .timeout(Duration::from_secs(15))
        .redirects(0)
        .build();
    let response = agent
        .get(url)
        .set("Accept", "application/json")
        .call()
        .map_err(|e| format!("cannot fetch {url}: {e}"))?;
    read_bounded(response.into_reader(), url)
}

/// Reads a file, or fetches it when `source` is a URL.
pub(crate) fn document(source: &str) -> Result<String, String> {
    if source.starts_with("https://") || source.starts_with("http://") {
        get(source)
    } else {
        let file = std::fs::File::open(source).map_err(|e| format!("cannot open {source}: {e}"))?;
        read_bounded(file, source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback_http_is_fetched() {
        assert!(is_loopback_http("http://127.0.0.1:8080/jwks"));
        assert!(is_loopback_http("http://localhost/jwks"));
        assert!(!is_loopback_http("http://127.0.0.1.evil.example/jwks"));
        assert!(!is_loopback_http("http://gitlab.example.com/jwks"));
        assert!(get("http://gitlab.example.com/oauth/discovery/keys")
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
