//! The component's WIT glue: converts between WIT types and the core, nothing else.
//!
//! Every conversion is an exhaustive `match` without a `_` arm, so a new error variant in the
//! core or a new case in the WIT breaks the build instead of being silently dropped.

wit_bindgen::generate!({ path: "wit", world: "oidc" });

mod exchange;
mod policy;
mod verify;

/// The exported component; each interface is implemented in the module of its name.
struct Component;

export!(Component);
