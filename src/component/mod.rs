//! The component's WIT glue: converts between WIT types and the core, nothing else.
//!
//! Every conversion is an exhaustive `match` without a `_` arm, so a new error variant in the
//! core or a new case in the WIT breaks the build instead of being silently dropped.

// The error type is the WIT-generated failure record, which the canonical ABI returns by value;
// boxing it here would only add a copy.
#![allow(clippy::result_large_err)]

wit_bindgen::generate!({ path: "wit", world: "oidc" });

mod convert;
mod gate;
mod lint;
mod policy;
mod verify;

/// The exported component; each interface is implemented in the module of its name.
struct Component;

export!(Component);
