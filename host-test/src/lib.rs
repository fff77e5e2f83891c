//! The wasmtime host for the gitlab-azure-oidc component.
//!
//! Loads the component once ([`Host`]: compiled, linked and pre-instantiated), then gives every
//! call a fresh store with a memory limit and an execution bound (fuel). A guest trap never takes
//! the host down: a one-shot call simply fails with [`HostError::Trap`], and a long-lived
//! [`VerifierHandle`] rebuilds its instance from the configuration and JWKS it keeps.
#![forbid(unsafe_code)]

use std::fmt;

mod signatures;

use wasmtime::component::{Component, HasSelf, Linker, ResourceAny, ResourceTable};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, ResourceLimiter, Store, StoreLimits,
    StoreLimitsBuilder, Trap,
};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// The generated bindings of `wit/oidc.wit`.
#[allow(missing_docs, unreachable_pub)]
pub mod bindings {
    wasmtime::component::bindgen!({ path: "../wit", world: "oidc" });
}

pub use bindings::exports::gitlab_azure::oidc::exchange::{
    AccessToken, AssertionAlgorithm, AzureTarget, Certificate, Credential, EntraError,
    ExchangeError, ExchangeFailure, HttpRequest,
};
pub use bindings::exports::gitlab_azure::oidc::policy::{
    Decision, PlanReport, PolicyFailure, PreflightReport,
};
pub use bindings::exports::gitlab_azure::oidc::verify::{
    Algorithm, CheckedToken, Claims, Failure, VerifiedToken, VerifierConfig, VerifyOptions,
};

use bindings::{Oidc, OidcPre};

/// The component `make` built, embedded at compile time when it was present.
#[cfg(embedded_component)]
pub const EMBEDDED_COMPONENT: Option<&[u8]> =
    Some(include_bytes!(concat!(env!("OUT_DIR"), "/component.wasm")));
/// The component `make` built, embedded at compile time when it was present.
#[cfg(not(embedded_component))]
pub const EMBEDDED_COMPONENT: Option<&[u8]> = None;

/// Per-call resource bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest linear memory of an instance, in bytes. Defaults to 64 MiB.
    pub memory_bytes: usize,
    /// Fuel (about one unit per wasm instruction) for one call. Defaults to 2,000,000,000,
    /// some hundred times what an RSA-4096 verification needs.
    pub fuel_per_call: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self { memory_bytes: 64 << 20, fuel_per_call: 2_000_000_000 }
    }
}

/// Why the host could not get an answer from the component (the component's own refusals are
/// [`Failure`] values, not this).
#[derive(Debug)]
#[non_exhaustive]
pub enum HostError {
    /// The component could not be compiled, linked or instantiated.
    Load(String),
    /// The guest trapped; the instance was discarded.
    Trap {
        /// The trap, e.g. `all fuel consumed by WebAssembly`.
        detail: String,
        /// True when the execution bound ran out.
        out_of_fuel: bool,
    },
    /// No component: the binary was built without one and none was given.
    NoComponent,
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Load(detail) => write!(f, "cannot load the component: {detail}"),
            Self::Trap { detail, out_of_fuel: true } => {
                write!(f, "the component ran out of its execution bound and was stopped: {detail}")
            }
            Self::Trap { detail, .. } => {
                write!(f, "the component trapped and was discarded (please report this): {detail}")
            }
            Self::NoComponent => f.write_str(
                "this binary was built without an embedded component; build it with `make` or \
                 pass --component FILE",
            ),
        }
    }
}

impl std::error::Error for HostError {}

fn classify(err: wasmtime::Error) -> HostError {
    match err.downcast_ref::<Trap>() {
        Some(trap) => {
            HostError::Trap { detail: trap.to_string(), out_of_fuel: *trap == Trap::OutOfFuel }
        }
        None => HostError::Trap { detail: format!("{err:#}"), out_of_fuel: false },
    }
}

/// Store data: WASI context (the component's std needs it, though it does no I/O), limits, and
/// whether the `signatures` import checks signatures natively.
struct State {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: Limiter,
    native_signatures: bool,
    /// How many signatures the import checked natively (not counting `unsupported` answers).
    native_checks: u64,
}

impl bindings::gitlab_azure::oidc::signatures::Host for State {
    fn verify_signature(
        &mut self,
        alg: String,
        key: bindings::gitlab_azure::oidc::signatures::PublicKey,
        message: Vec<u8>,
        signature: Vec<u8>,
    ) -> bindings::gitlab_azure::oidc::signatures::Verdict {
        if !self.native_signatures {
            return bindings::gitlab_azure::oidc::signatures::Verdict::Unsupported;
        }
        let verdict = signatures::verify(&alg, &key, &message, &signature);
        if !matches!(verdict, bindings::gitlab_azure::oidc::signatures::Verdict::Unsupported) {
            self.native_checks += 1;
        }
        verdict
    }
}

/// wasmtime's [`StoreLimits`] plus a record of the largest linear memory the guest grew to.
struct Limiter {
    inner: StoreLimits,
    peak_memory: usize,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.inner.memory_growing(current, desired, maximum)?;
        if allowed {
            self.peak_memory = self.peak_memory.max(desired);
        }
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

/// Engine settings, for measuring what each costs; [`Tuning::default`] is what the CLI uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tuning {
    /// Bound every call with fuel. Defaults to true; off only for measurements.
    pub fuel: bool,
    /// Use the pooling instance allocator (faster instantiation, memory reserved up front).
    /// Defaults to false.
    pub pooling: bool,
    /// Answer the component's `signatures` import with native ring. Defaults to true: RS256
    /// natively costs about a seventeenth of ring inside WebAssembly. Off, the component checks
    /// signatures itself (for measurements and differential tests).
    pub native_signatures: bool,
    /// Optimize the compiled component (Cranelift's `speed` level). Defaults to true. A process
    /// that makes a handful of calls, like the CLI, starts faster without ([`Tuning::one_shot`]):
    /// compiling the component is then most of its run time.
    pub optimize: bool,
}

impl Default for Tuning {
    fn default() -> Self {
        Self { fuel: true, pooling: false, native_signatures: true, optimize: true }
    }
}

impl Tuning {
    /// For a process that makes a few calls and exits (the CLI): the component is compiled
    /// without Cranelift's optimizations, which cut the start by about a third here (1.5-1.8 s
    /// to 1.0-1.3 s on a 2-core VM). With signatures checked natively, the little code that
    /// runs barely notices.
    pub fn one_shot() -> Self {
        Self { optimize: false, ..Self::default() }
    }
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// The loaded component: compile once, instantiate cheaply for every call.
#[derive(Clone)]
pub struct Host {
    engine: Engine,
    pre: OidcPre<State>,
    limits: Limits,
    tuning: Tuning,
}

impl Host {
    /// Compiles and links a component.
    ///
    /// # Errors
    /// [`HostError::Load`] when the bytes are not a component with the expected world.
    pub fn new(component: &[u8], limits: Limits) -> Result<Self, HostError> {
        Self::with_tuning(component, limits, Tuning::default())
    }

    /// Compiles and links a component with explicit engine settings.
    ///
    /// # Errors
    /// [`HostError::Load`] when the bytes are not a component with the expected world.
    pub fn with_tuning(
        component: &[u8],
        limits: Limits,
        tuning: Tuning,
    ) -> Result<Self, HostError> {
        let load = |e: wasmtime::Error| HostError::Load(format!("{e:#}"));
        let mut config = Config::new();
        config.consume_fuel(tuning.fuel);
        if !tuning.optimize {
            config.cranelift_opt_level(wasmtime::OptLevel::None);
        }
        // No component-model-async machinery: the synchronous call path is about twice as cheap,
        // the component does not use async, and this build of wasmtime leaves the feature out.
        config.concurrency_support(false);
        if tuning.pooling {
            config.allocation_strategy(InstanceAllocationStrategy::pooling());
        }
        let engine = Engine::new(&config).map_err(load)?;
        let component = Component::new(&engine, component).map_err(load)?;
        let mut linker = Linker::<State>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(load)?;
        Oidc::add_to_linker::<State, HasSelf<State>>(&mut linker, |state| state).map_err(load)?;
        let pre = OidcPre::new(linker.instantiate_pre(&component).map_err(load)?).map_err(load)?;
        Ok(Self { engine, pre, limits, tuning })
    }

    /// The component embedded in this binary.
    ///
    /// # Errors
    /// [`HostError::NoComponent`] when none was embedded, or a load error.
    pub fn embedded(limits: Limits) -> Result<Self, HostError> {
        Self::embedded_with_tuning(limits, Tuning::default())
    }

    /// The embedded component with explicit engine settings.
    ///
    /// # Errors
    /// As [`Host::embedded`].
    pub fn embedded_with_tuning(limits: Limits, tuning: Tuning) -> Result<Self, HostError> {
        Self::with_tuning(EMBEDDED_COMPONENT.ok_or(HostError::NoComponent)?, limits, tuning)
    }

    /// The limits every call gets.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Gives a call its fuel (`limits.fuel_per_call`), when fuel is on.
    fn refuel(&self, store: &mut Store<State>) -> Result<(), HostError> {
        if self.tuning.fuel {
            store.set_fuel(self.limits.fuel_per_call).map_err(classify)?;
        }
        Ok(())
    }

    fn instantiate(&self) -> Result<(Store<State>, Oidc), HostError> {
        let limits = StoreLimitsBuilder::new()
            .memory_size(self.limits.memory_bytes)
            .instances(4)
            .trap_on_grow_failure(true)
            .build();
        let limits = Limiter { inner: limits, peak_memory: 0 };
        let state = State {
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
            limits,
            native_signatures: self.tuning.native_signatures,
            native_checks: 0,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        // Instantiation runs guest start code, so it needs fuel too.
        self.refuel(&mut store)?;
        let oidc = self.pre.instantiate(&mut store).map_err(classify)?;
        Ok((store, oidc))
    }

    /// One-shot verification in a fresh instance.
    ///
    /// # Errors
    /// A [`HostError`] when the guest could not answer; the component's verdict is the inner
    /// result.
    pub fn verify_gitlab_token(
        &self,
        token: &str,
        jwks: &str,
        options: &VerifyOptions,
    ) -> Result<Result<VerifiedToken, Failure>, HostError> {
        self.session()?.verify_gitlab_token(token, jwks, options)
    }

    /// A fresh instance for a sequence of calls (verify, decide, build, parse). After a
    /// [`HostError::Trap`] the session is dead: start another.
    ///
    /// # Errors
    /// A [`HostError`] when the component cannot be instantiated.
    pub fn session(&self) -> Result<Session, HostError> {
        let (store, oidc) = self.instantiate()?;
        Ok(Session { store, oidc, host: self.clone() })
    }

    /// A long-lived verifier: the JWKS is parsed once inside the guest and reused.
    ///
    /// # Errors
    /// A [`HostError`] when the guest could not answer; the inner result is the component's
    /// verdict on the configuration and JWKS.
    pub fn verifier(
        &self,
        config: VerifierConfig,
        jwks: String,
    ) -> Result<Result<VerifierHandle, Failure>, HostError> {
        let mut handle = VerifierHandle { host: self.clone(), config, jwks, live: None };
        match handle.revive()? {
            Ok(()) => Ok(Ok(handle)),
            Err(failure) => Ok(Err(failure)),
        }
    }
}

/// One instance of the component, for a sequence of calls; each call gets the fuel bound anew.
pub struct Session {
    store: Store<State>,
    oidc: Oidc,
    host: Host,
}

/// A loaded policy inside a [`Session`].
#[derive(Clone, Copy, Debug)]
pub struct PolicyRef(ResourceAny);

impl Session {
    fn call<R>(
        &mut self,
        f: impl FnOnce(&mut Store<State>, &Oidc) -> wasmtime::Result<R>,
    ) -> Result<R, HostError> {
        self.host.refuel(&mut self.store)?;
        f(&mut self.store, &self.oidc).map_err(classify)
    }

    /// `verify-gitlab-token`.
    ///
    /// # Errors
    /// [`HostError`] when the guest could not answer.
    pub fn verify_gitlab_token(
        &mut self,
        token: &str,
        jwks: &str,
        options: &VerifyOptions,
    ) -> Result<Result<VerifiedToken, Failure>, HostError> {
        self.call(|s, o| {
            o.gitlab_azure_oidc_verify().call_verify_gitlab_token(s, token, jwks, options)
        })
    }

    /// `build-azure-assertion`.
    ///
    /// # Errors
    /// [`HostError`] when the guest could not answer.
    pub fn build_azure_assertion(
        &mut self,
        target: &AzureTarget,
        credential: &Credential,
        now: u64,
    ) -> Result<Result<HttpRequest, ExchangeFailure>, HostError> {
        self.call(|s, o| {
            o.gitlab_azure_oidc_exchange().call_build_azure_assertion(s, target, credential, now)
        })
    }

    /// `parse-token-response`.
    ///
    /// # Errors
    /// [`HostError`] when the guest could not answer.
    pub fn parse_token_response(
        &mut self,
        status: u16,
        headers: &[(String, String)],
        body: &[u8],
        now: u64,
    ) -> Result<Result<AccessToken, ExchangeFailure>, HostError> {
        self.call(|s, o| {
            o.gitlab_azure_oidc_exchange().call_parse_token_response(s, status, headers, body, now)
        })
    }

    /// `federated-subject`.
    ///
    /// # Errors
    /// [`HostError`] when the guest could not answer.
    pub fn federated_subject(&mut self, claims: &Claims) -> Result<Option<String>, HostError> {
        self.call(|s, o| o.gitlab_azure_oidc_exchange().call_federated_subject(s, claims))
    }

    /// Loads a policy document into this instance.
    ///
    /// # Errors
    /// [`HostError`] when the guest could not answer.
    pub fn load_policy(
        &mut self,
        document: &str,
    ) -> Result<Result<PolicyRef, PolicyFailure>, HostError> {
        let loaded =
            self.call(|s, o| o.gitlab_azure_oidc_policy().policy().call_constructor(s, document))?;
        Ok(loaded.map(PolicyRef))
    }

    /// `policy.decide`.
    ///
    /// # Errors
    /// [`HostError`] when the guest could not answer.
    pub fn decide(
        &mut self,
        policy: PolicyRef,
        claims: &Claims,
        token: &str,
        now: u64,
    ) -> Result<Result<Decision, PolicyFailure>, HostError> {
        self.call(|s, o| {
            o.gitlab_azure_oidc_policy().policy().call_decide(s, policy.0, claims, token, now)
        })
    }

    /// `policy.warnings`.
    ///
    /// # Errors
    /// [`HostError`] when the guest could not answer.
    pub fn policy_warnings(&mut self, policy: PolicyRef) -> Result<Vec<String>, HostError> {
        self.call(|s, o| o.gitlab_azure_oidc_policy().policy().call_warnings(s, policy.0))
    }

    /// `policy.plan`.
    ///
    /// # Errors
    /// [`HostError`] when the guest could not answer.
    pub fn plan(
        &mut self,
        policy: PolicyRef,
        issuer: &str,
        audience: &str,
    ) -> Result<PlanReport, HostError> {
        self.call(|s, o| {
            o.gitlab_azure_oidc_policy().policy().call_plan(s, policy.0, issuer, audience)
        })
    }

    /// `preflight`.
    ///
    /// # Errors
    /// [`HostError`] when the guest could not answer.
    pub fn preflight(
        &mut self,
        claims: &Claims,
        credentials_json: &str,
    ) -> Result<Result<PreflightReport, PolicyFailure>, HostError> {
        self.call(|s, o| o.gitlab_azure_oidc_policy().call_preflight(s, claims, credentials_json))
    }
}

struct Live {
    store: Store<State>,
    oidc: Oidc,
    verifier: ResourceAny,
}

/// A verifier resource living in its own instance. It keeps the configuration and the raw JWKS
/// on the host side so that after a guest trap (which poisons the instance) it can rebuild.
pub struct VerifierHandle {
    host: Host,
    config: VerifierConfig,
    jwks: String,
    live: Option<Live>,
}

impl VerifierHandle {
    fn revive(&mut self) -> Result<Result<(), Failure>, HostError> {
        let (mut store, oidc) = self.host.instantiate()?;
        let created = oidc
            .gitlab_azure_oidc_verify()
            .verifier()
            .call_constructor(&mut store, &self.config, &self.jwks)
            .map_err(classify)?;
        Ok(created.map(|verifier| self.live = Some(Live { store, oidc, verifier })))
    }

    /// Runs `call` against the live instance, reviving it first if a trap killed it.
    fn with_live<R>(
        &mut self,
        call: impl FnOnce(&mut Live) -> wasmtime::Result<R>,
    ) -> Result<R, HostError> {
        if self.live.is_none() {
            if let Err(failure) = self.revive()? {
                return Err(HostError::Load(format!(
                    "the kept configuration no longer loads: {}",
                    failure.message
                )));
            }
        }
        let Some(live) = self.live.as_mut() else { return Err(HostError::NoComponent) };
        self.host.refuel(&mut live.store)?;
        match call(live) {
            Ok(result) => Ok(result),
            Err(err) => {
                // A trapped store refuses every later call: drop it, revive on the next call.
                self.live = None;
                Err(classify(err))
            }
        }
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
        self.with_live(|live| {
            live.oidc.gitlab_azure_oidc_verify().verifier().call_verify(
                &mut live.store,
                live.verifier,
                token,
                now,
            )
        })
    }

    /// `check`: judges the token like [`VerifierHandle::verify`] but returns only its
    /// fingerprint, `jti` and `exp`, the cheap call for a caller that kept the claims.
    ///
    /// # Errors
    /// [`HostError::Trap`] when the guest trapped.
    pub fn check(
        &mut self,
        token: &str,
        now: u64,
    ) -> Result<Result<CheckedToken, Failure>, HostError> {
        self.with_live(|live| {
            live.oidc.gitlab_azure_oidc_verify().verifier().call_check(
                &mut live.store,
                live.verifier,
                token,
                now,
            )
        })
    }

    /// Replaces the JWKS (after an `unknown-kid` and a refetch). The new document is kept only
    /// if the component accepted it.
    ///
    /// # Errors
    /// [`HostError::Trap`] when the guest trapped.
    pub fn replace_jwks(&mut self, jwks: String) -> Result<Result<(), Failure>, HostError> {
        let result = self.with_live(|live| {
            live.oidc.gitlab_azure_oidc_verify().verifier().call_replace_jwks(
                &mut live.store,
                live.verifier,
                &jwks,
            )
        })?;
        if result.is_ok() {
            self.jwks = jwks;
        }
        Ok(result)
    }

    /// The largest linear memory the live instance has grown to, in bytes.
    pub fn memory_bytes(&self) -> usize {
        self.live.as_ref().map_or(0, |l| l.store.data().limits.peak_memory)
    }

    /// How many signatures the live instance had the host check natively.
    pub fn native_signature_checks(&self) -> u64 {
        self.live.as_ref().map_or(0, |l| l.store.data().native_checks)
    }

    /// Changes the execution bound of later calls.
    pub fn set_fuel_per_call(&mut self, fuel: u64) {
        self.host.limits.fuel_per_call = fuel;
    }

    /// The usable keys (`kid`, `alg`, kind) and the skipped ones with reasons.
    ///
    /// # Errors
    /// [`HostError::Trap`] when the guest trapped.
    pub fn keys(
        &mut self,
    ) -> Result<(Vec<bindings::exports::gitlab_azure::oidc::verify::KeyInfo>, Vec<String>), HostError>
    {
        self.with_live(|live| {
            live.oidc
                .gitlab_azure_oidc_verify()
                .verifier()
                .call_keys(&mut live.store, live.verifier)
        })
    }
}

impl Drop for VerifierHandle {
    fn drop(&mut self) {
        if let Some(mut live) = self.live.take() {
            // Dropping the store frees everything anyway; this runs the guest destructor first.
            let _ = live.verifier.resource_drop(&mut live.store);
        }
    }
}

/// A verifier configuration with the defaults filled in.
pub fn config(issuer: &str, audiences: &[&str]) -> VerifierConfig {
    VerifierConfig {
        issuer: issuer.to_owned(),
        audiences: audiences.iter().map(|a| (*a).to_owned()).collect(),
        algorithms: Vec::new(),
        leeway: None,
        max_age: None,
        insecure_skip_audience: false,
    }
}
