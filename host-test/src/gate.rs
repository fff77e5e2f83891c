//! The exchange through the component's `gate`: a long-lived handle that installs keys, admits
//! tokens and reads Entra's answers, and survives guest traps.

use wasmtime::component::ResourceAny;
use wasmtime::Store;

use crate::bindings::Oidc;
use crate::engine::State;
use crate::resident::{Recipe, Resident};
use crate::{AccessToken, Admission, Failure, GateConfig, Host, HostError};

struct GateRecipe {
    config: GateConfig,
    jwks: Option<String>,
}

impl Recipe for GateRecipe {
    fn construct(
        &self,
        store: &mut Store<State>,
        oidc: &Oidc,
    ) -> wasmtime::Result<Result<ResourceAny, Failure>> {
        oidc.gitlab_azure_oidc_gate().gate().call_constructor(
            store,
            &self.config,
            self.jwks.as_deref(),
        )
    }
}

/// The component's `gate` in its own instance. It keeps its configuration and the last JWKS it
/// installed, so after a guest trap the next call runs in a fresh instance with the same keys
/// (verified tokens and decisions are forgotten then, which costs one verification).
pub struct GateHandle(Resident<GateRecipe>);

impl GateHandle {
    /// Builds a gate; the inner result is the component's verdict on the configuration (and the
    /// JWKS, when given).
    ///
    /// # Errors
    /// A [`HostError`] when the guest could not answer.
    pub fn new(
        host: &Host,
        config: GateConfig,
        jwks: Option<String>,
    ) -> Result<Result<Self, Failure>, HostError> {
        Ok(Resident::new(host, GateRecipe { config, jwks })?.map(Self))
    }

    /// Installs the issuer's JWKS; kept for a rebuild only if the component accepted it.
    ///
    /// # Errors
    /// [`HostError::Trap`] when the guest trapped.
    pub fn install_jwks(&mut self, jwks: String) -> Result<Result<(), Failure>, HostError> {
        let result = self.0.call(|l| {
            l.oidc.gitlab_azure_oidc_gate().gate().call_install_jwks(
                &mut l.store,
                l.resource,
                &jwks,
            )
        })?;
        if result.is_ok() {
            self.0.recipe.jwks = Some(jwks);
        }
        Ok(result)
    }

    /// True when the gate can admit: it has keys, or it does not verify.
    ///
    /// # Errors
    /// [`HostError::Trap`] when the guest trapped.
    pub fn ready(&mut self) -> Result<bool, HostError> {
        self.0.call(|l| l.oidc.gitlab_azure_oidc_gate().gate().call_ready(&mut l.store, l.resource))
    }

    /// Verifies, decides and builds the Entra request at `now`.
    ///
    /// # Errors
    /// [`HostError::Trap`] when the guest trapped.
    pub fn admit(
        &mut self,
        token: &str,
        now: u64,
    ) -> Result<Result<Admission, Failure>, HostError> {
        self.0.call(|l| {
            l.oidc.gitlab_azure_oidc_gate().gate().call_admit(&mut l.store, l.resource, token, now)
        })
    }

    /// Reads Entra's answer to the request `request_id` (the admission's), received at `now`,
    /// and queues its audit event.
    ///
    /// # Errors
    /// [`HostError::Trap`] when the guest trapped.
    pub fn finish(
        &mut self,
        request_id: &str,
        status: u16,
        headers: &[(String, String)],
        body: &[u8],
        now: u64,
    ) -> Result<Result<AccessToken, Failure>, HostError> {
        self.0.call(|l| {
            l.oidc.gitlab_azure_oidc_gate().gate().call_finish(
                &mut l.store,
                l.resource,
                request_id,
                status,
                headers,
                body,
                now,
            )
        })
    }

    /// The audit events queued since the last call, one JSON line each.
    ///
    /// # Errors
    /// [`HostError::Trap`] when the guest trapped.
    pub fn take_audit(&mut self) -> Result<Vec<String>, HostError> {
        self.0.call(|l| {
            l.oidc.gitlab_azure_oidc_gate().gate().call_take_audit(&mut l.store, l.resource)
        })
    }

    /// Queues the reuse counts of kept decisions (drained by [`GateHandle::take_audit`]).
    ///
    /// # Errors
    /// [`HostError::Trap`] when the guest trapped.
    pub fn summarize(&mut self, now: u64) -> Result<(), HostError> {
        self.0.call(|l| {
            l.oidc.gitlab_azure_oidc_gate().gate().call_summarize(&mut l.store, l.resource, now)
        })
    }

    /// The largest linear memory the live instance has grown to, in bytes.
    pub fn memory_bytes(&self) -> usize {
        self.0.memory_bytes()
    }

    /// How many signatures the live instance had the host check natively.
    pub fn native_signature_checks(&self) -> u64 {
        self.0.native_signature_checks()
    }

    /// Changes the execution bound of later calls.
    pub fn set_fuel_per_call(&mut self, fuel: u64) {
        self.0.set_fuel_per_call(fuel);
    }
}
