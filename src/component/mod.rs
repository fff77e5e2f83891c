//! The component's WIT glue: converts between WIT types and the core, nothing else.
//!
//! Every conversion is an exhaustive `match` without a `_` arm, so a new error variant in the
//! core or a new case in the WIT breaks the build instead of being silently dropped.

// The error types are the WIT-generated failure records, which the canonical ABI returns by
// value; boxing them here would only add a copy.
#![allow(clippy::result_large_err)]

wit_bindgen::generate!({ path: "wit", world: "oidc" });

mod exchange;
mod policy;
mod verify;

/// The exported component; each interface is implemented in the module of its name.
struct Component;

export!(Component);
