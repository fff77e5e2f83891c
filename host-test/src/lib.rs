//! # gitlab-azure-oidc-host: the wasmtime host of the gitlab-azure-oidc component
//!
//! Loads the component once ([`Host`]: compiled, linked and pre-instantiated), then gives every
//! call a fresh store with a memory limit and an execution bound (fuel). A guest trap never takes
//! the host down: a one-shot call simply fails with [`HostError::Trap`], and the long-lived
//! handles ([`GateHandle`], [`VerifierHandle`]) rebuild their instance from what they keep.
//!
//! | module | what it holds |
//! |---|---|
//! | `engine` | [`Host`]: the engine, its [`Tuning`] and per-call [`Limits`]; compiled or precompiled ([`Origin`]) |
//! | `gate` | [`GateHandle`]: the exchange (install the JWKS, admit, finish), surviving traps |
//! | `verifier` | [`VerifierHandle`]: a long-lived verifier for tooling |
//! | `session` | [`Session`]: one instance for one-shot tooling calls (verify, policy, plan, audit, lint) |
//! | `signatures` | the component's `signatures` import, answered with ring |
//!
//! The host does I/O for the component and nothing else: it neither reads files nor talks to the
//! network itself (the CLI does), and it never decides anything the component decides.
// deny, not forbid: one function (`engine::load_precompiled`) loads the build-time compiled
// component, which wasmtime can only do in `unsafe`; its SAFETY comment says why it is sound.
#![deny(unsafe_code)]

mod engine;
mod error;
mod gate;
mod resident;
mod session;
mod signatures;
mod verifier;

/// The generated bindings of `wit/oidc.wit`.
#[allow(missing_docs, unreachable_pub)]
pub mod bindings {
    wasmtime::component::bindgen!({ path: "../wit", world: "oidc" });
}

pub use bindings::exports::gitlab_azure::oidc::gate::{
    Admission, AssertionAlgorithm, Certificate, Credential, GateConfig,
};
pub use bindings::exports::gitlab_azure::oidc::lint::{
    CiFile, Includes, LintContext, LintReport, SeverityCounts,
};
pub use bindings::exports::gitlab_azure::oidc::policy::{
    AuditOptions, Decision, PlanOptions, PlanReport, PreflightReport, RbacReport, RuleWarnings,
    SubjectForm,
};
pub use bindings::exports::gitlab_azure::oidc::verify::{
    CheckedToken, ClaimKind, ClaimSpec, KeyInfo,
};
pub use bindings::gitlab_azure::oidc::types::{
    AccessToken, Algorithm, AzureTarget, Category, Failure, HttpRequest, Location,
    RegisteredClaims, Severity, VerifiedToken, VerifierConfig,
};
pub use engine::{Host, Limits, Origin, Tuning, EMBEDDED_COMPONENT};
pub use error::HostError;
pub use gate::GateHandle;
pub use session::{PolicyRef, Session};
pub use verifier::VerifierHandle;

/// A verifier configuration with the defaults filled in.
pub fn config(issuer: &str, audiences: &[&str]) -> VerifierConfig {
    VerifierConfig {
        issuer: issuer.to_owned(),
        audiences: audiences.iter().map(|a| (*a).to_owned()).collect(),
        algorithms: Vec::new(),
        leeway: None,
        max_age: None,
        dangerous_skip_audience_check: false,
    }
}
