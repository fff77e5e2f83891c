//! A secret string: an assertion, an identity token, the identity endpoint's header.

use std::fmt;

/// A value that must never be printed: `Debug` prints `Secret([redacted])`, `Display` prints
/// `[redacted]`, and the value comes out only through [`Secret::secret`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself.
    ///
    /// # Security Warning
    /// It is a credential (an assertion Entra accepts, a managed identity's token, the identity
    /// endpoint's secret header): send it where it belongs, never into a log, an error or an
    /// audit event.
    pub fn secret(&self) -> &str {
        &self.0
    }

    /// True when the value is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        // Best effort: do not leave the value in freed memory.
        let mut bytes = std::mem::take(&mut self.0).into_bytes();
        bytes.fill(0);
        std::hint::black_box(&bytes);
    }
}
