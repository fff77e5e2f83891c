//! GUIDs: parsing them, and deriving a deterministic one the way ARM's `guid()` does.
//!
//! ARM's (and Bicep's) `guid(baseString, ...)` is a name-based UUID, version 5 (RFC 4122 §4.3,
//! RFC 9562 §5.5): SHA-1 over a fixed namespace UUID followed by the UTF-8 name, then the
//! version and variant bits. The namespace is `11fb06fb-712d-4ddd-98c7-e71bbd588830`.
//!
//! **What is confirmed.** Microsoft's documentation says only that the value is "the result of
//! a hash function on the parameters". The algorithm and namespace above reproduce a value
//! that Microsoft's own evaluator produced: the Bicep repository's compiled parameters file
//! `src/Bicep.Core.Samples/Files/baselines_bicepparam/Expressions/parameters.json` has
//! `guid('asdf')` = `228d27cc-6fdb-5934-b7ac-1efccebade04` (checked in this module's tests).
//! With several arguments, third-party reimplementations join them with `-` before hashing;
//! that is **not** confirmed against a Microsoft-produced value, so this crate always hashes
//! one string (the parts joined with `-`), which ARM reproduces as
//! `guid(concat(a, '-', b, '-', c))` whatever the multi-argument rule is.

use ring::digest;

use crate::text::ident::{canonical_guid, format_uuid};

/// The namespace UUID of ARM's `guid()`: `11fb06fb-712d-4ddd-98c7-e71bbd588830`.
const ARM_GUID_NAMESPACE: [u8; 16] = [
    0x11, 0xfb, 0x06, 0xfb, 0x71, 0x2d, 0x4d, 0xdd, 0x98, 0xc7, 0xe7, 0x1b, 0xbd, 0x58, 0x88, 0x30,
];

/// ARM's `guid(name)` for one string argument: a version-5 UUID in the namespace
/// `11fb06fb-712d-4ddd-98c7-e71bbd588830`, lowercase and hyphenated.
///
/// ```
/// use gitlab_azure_oidc::rbac::arm_guid;
/// // The value Bicep's evaluator produced for guid('asdf').
/// assert_eq!(arm_guid("asdf"), "228d27cc-6fdb-5934-b7ac-1efccebade04");
/// ```
pub fn arm_guid(name: &str) -> String {
    let mut context = digest::Context::new(&digest::SHA1_FOR_LEGACY_USE_ONLY);
    context.update(&ARM_GUID_NAMESPACE);
    context.update(name.as_bytes());
    let hash = context.finish();
    let mut bytes = [0u8; 16];
    for (byte, hashed) in bytes.iter_mut().zip(hash.as_ref()) {
        *byte = *hashed;
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x50; // version 5
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
    format_uuid(&bytes)
}

/// `value` as a canonical lowercase GUID when it is one.
pub(crate) fn parse_guid(value: &str) -> Option<String> {
    canonical_guid(value)
}

#[cfg(test)]
mod tests;
