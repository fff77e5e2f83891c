//! A long-lived verifier for tooling: the JWKS parsed once inside the guest and reused.

use wasmtime::component::ResourceAny;
use wasmtime::Store;

use crate::bindings::Oidc;
use crate::engine::State;
use crate::resident::{Recipe, Resident};
use crate::{CheckedToken, Failure, Host, HostError, KeyInfo, VerifiedToken, VerifierConfig};

struct VerifierRecipe {
    config: VerifierConfig,
    jwks: String,
}

impl Recipe for VerifierRecipe {
    fn construct(
        &self,
        store: &mut Store<State>,
        oidc: &Oidc,
    ) -> wasmtime::Result<Result<ResourceAny, Failure>> {
        oidc.gitlab_azure_oidc_verify().verifier().call_constructor(store, &self.config, &self.jwks)
    }
}

/// A verifier resource living in its own instance; after a guest trap (which poisons the
/// instance) it rebuilds from the configuration and JWKS it keeps.
pub struct VerifierHandle(Resident<VerifierRecipe>);

impl VerifierHandle {
    /// Builds a verifier; the inner result is the component's verdict on the configuration and
    /// JWKS.
    ///
    /// # Errors
    /// A [`HostError`] when the guest could not answer.
    pub fn new(
        host: &Host,
        config: VerifierConfig,
        jwks: String,
    ) -> Result<Result<Self, Failure>, HostError> {
        Ok(Resident::new(host, VerifierRecipe { config, jwks })?.map(Self))
    }

    /// Verifies a token at `now` (seconds since the Unix epoch).
    ///
    /// # Errors
    /// [`HostError::Trap`] when the guest trapped; the next call uses a fresh instance.
    pub fn verify(
        &mut self,
        token: &str,
        now: u64,
    ) -> Result<Result<VerifiedToken, Failure>, HostError> {
        self.0.call(|l| {
            l.oidc.gitlab_azure_oidc_verify().verifier().call_verify(
                &mut l.store,
                l.resource,
                token,
                now,
            )
        })
    }

    /// `check`: judges the token like [`VerifierHandle::verify`] but returns only its
    /// fingerprint, `jti` and `exp`.
    ///
    /// # Errors
    /// [`HostError::Trap`] when the guest trapped.
    pub fn check(
        &mut self,
        token: &str,
        now: u64,
    ) -> Result<Result<CheckedToken, Failure>, HostError> {
        self.0.call(|l| {
            l.oidc.gitlab_azure_oidc_verify().verifier().call_check(
                &mut l.store,
                l.resource,
                token,
                now,
            )
        })
    }

    /// Replaces the JWKS (after a failure with `refetch_jwks`). The new document is kept only if
    /// the component accepted it.
    ///
    /// # Errors
    /// [`HostError::Trap`] when the guest trapped.
    pub fn replace_jwks(&mut self, jwks: String) -> Result<Result<(), Failure>, HostError> {
        let result = self.0.call(|l| {
            l.oidc.gitlab_azure_oidc_verify().verifier().call_replace_jwks(
                &mut l.store,
                l.resource,
                &jwks,
            )
        })?;
        if result.is_ok() {
            self.0.recipe.jwks = jwks;
        }
        Ok(result)
    }

    /// The usable keys (`kid`, `alg`, kind) and the skipped ones with reasons.
    ///
    /// # Errors
    /// [`HostError::Trap`] when the guest trapped.
    pub fn keys(&mut self) -> Result<(Vec<KeyInfo>, Vec<String>), HostError> {
        self.0.call(|l| {
            l.oidc.gitlab_azure_oidc_verify().verifier().call_keys(&mut l.store, l.resource)
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
