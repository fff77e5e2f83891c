//! One instance for a sequence of one-shot tooling calls: verify a token, load a policy,
//! decide on claims, plan, audit role assignments, preflight, read the claim table.

use wasmtime::component::ResourceAny;
use wasmtime::Store;

use crate::bindings::Oidc;
use crate::engine::State;
use crate::error::classify;
use crate::{
    AuditOptions, ClaimSpec, Decision, Failure, Host, HostError, PlanOptions, PlanReport,
    PreflightReport, RbacReport, VerifiedToken, VerifierConfig,
};

/// One instance of the component; each call gets the fuel bound anew. After a
/// [`HostError::Trap`] the session is dead: start another.
pub struct Session {
    store: Store<State>,
    oidc: Oidc,
    host: Host,
}

/// A loaded policy inside a [`Session`].
#[derive(Clone, Copy, Debug)]
pub struct PolicyRef(ResourceAny);

impl Host {
    /// A fresh instance for a sequence of calls.
    ///
    /// # Errors
    /// A [`HostError`] when the component cannot be instantiated.
    pub fn session(&self) -> Result<Session, HostError> {
        let (store, oidc) = self.instantiate()?;
        Ok(Session { store, oidc, host: self.clone() })
    }
}

impl Session {
    fn call<R>(
        &mut self,
        f: impl FnOnce(&mut Store<State>, &Oidc) -> wasmtime::Result<R>,
    ) -> Result<R, HostError> {
        self.host.refuel(&mut self.store)?;
        f(&mut self.store, &self.oidc).map_err(classify)
    }

    /// `verify-gitlab-token`: parses the configuration and JWKS, verifies, forgets them.
    ///
    /// # Errors
    /// [`HostError`] when the guest could not answer.
    pub fn verify_gitlab_token(
        &mut self,
        token: &str,
        jwks: &str,
        config: &VerifierConfig,
        now: u64,
    ) -> Result<Result<VerifiedToken, Failure>, HostError> {
        self.call(|s, o| {
            o.gitlab_azure_oidc_verify().call_verify_gitlab_token(s, token, jwks, config, now)
        })
    }

    /// `claim-table`: every claim this version names.
    ///
    /// # Errors
    /// [`HostError`] when the guest could not answer.
    pub fn claim_table(&mut self) -> Result<Vec<ClaimSpec>, HostError> {
        self.call(|s, o| o.gitlab_azure_oidc_verify().call_claim_table(s))
    }

    /// Loads a policy document into this instance.
    ///
    /// # Errors
    /// [`HostError`] when the guest could not answer.
    pub fn load_policy(&mut self, document: &str) -> Result<Result<PolicyRef, Failure>, HostError> {
        let loaded =
            self.call(|s, o| o.gitlab_azure_oidc_policy().policy().call_constructor(s, document))?;
        Ok(loaded.map(PolicyRef))
    }

    /// `policy.decide` on claims given as JSON; `fingerprint` names the token in the audit
    /// event.
    ///
    /// # Errors
    /// [`HostError`] when the guest could not answer.
    pub fn decide(
        &mut self,
        policy: PolicyRef,
        claims_json: &str,
        fingerprint: &str,
        now: u64,
    ) -> Result<Result<Decision, Failure>, HostError> {
        self.call(|s, o| {
            o.gitlab_azure_oidc_policy().policy().call_decide(
                s,
                policy.0,
                claims_json,
                fingerprint,
                now,
            )
        })
    }

    /// `policy.warnings`.
    ///
    /// # Errors
    /// [`HostError`] when the guest could not answer.
    pub fn policy_warnings(&mut self, policy: PolicyRef) -> Result<Vec<String>, HostError> {
        self.call(|s, o| o.gitlab_azure_oidc_policy().policy().call_warnings(s, policy.0))
    }

    /// `policy.plan`: the federated credentials and role assignments the policy needs.
    ///
    /// # Errors
    /// [`HostError`] when the guest could not answer.
    pub fn plan(
        &mut self,
        policy: PolicyRef,
        options: &PlanOptions,
    ) -> Result<Result<PlanReport, Failure>, HostError> {
        self.call(|s, o| o.gitlab_azure_oidc_policy().policy().call_plan(s, policy.0, options))
    }

    /// `audit-rbac`: role assignments (an `az role assignment list` export) against what the
    /// policy document declares, with the tenant's role definitions when given.
    ///
    /// # Errors
    /// [`HostError`] when the guest could not answer.
    pub fn audit_rbac(
        &mut self,
        policy: &str,
        assignments: &str,
        definitions: Option<&str>,
        options: &AuditOptions,
    ) -> Result<Result<RbacReport, Failure>, HostError> {
        self.call(|s, o| {
            o.gitlab_azure_oidc_policy().call_audit_rbac(
                s,
                policy,
                assignments,
                definitions,
                options,
            )
        })
    }

    /// `preflight`: would Entra accept these claims with these federated credentials?
    ///
    /// # Errors
    /// [`HostError`] when the guest could not answer.
    pub fn preflight(
        &mut self,
        claims_json: &str,
        credentials_json: &str,
    ) -> Result<Result<PreflightReport, Failure>, HostError> {
        self.call(|s, o| {
            o.gitlab_azure_oidc_policy().call_preflight(s, claims_json, credentials_json)
        })
    }
}
