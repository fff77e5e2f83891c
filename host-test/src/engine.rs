//! The engine: the component compiled once, and a fresh, bounded store for every instance.

use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, ResourceLimiter, Store, StoreLimits,
    StoreLimitsBuilder,
};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::bindings::{Oidc, OidcPre};
use crate::error::classify;
use crate::HostError;

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

/// Engine settings, for measuring what each costs; [`Tuning::default`] is what long-lived hosts
/// use.
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
    /// that makes a handful of calls starts faster without ([`Tuning::one_shot`]).
    pub optimize: bool,
}

impl Default for Tuning {
    fn default() -> Self {
        Self { fuel: true, pooling: false, native_signatures: true, optimize: true }
    }
}

impl Tuning {
    /// For a process that makes a few calls and exits: the component is compiled without
    /// Cranelift's optimizations, which cut compiling by about a third; with signatures checked
    /// natively, the little code that runs barely notices.
    pub fn one_shot() -> Self {
        Self { optimize: false, ..Self::default() }
    }
}

/// Store data: WASI context (the component's std needs it, though it does no I/O), limits, and
/// whether the `signatures` import checks signatures natively.
pub(crate) struct State {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limits: Limiter,
    pub(crate) native_signatures: bool,
    /// How many signatures the import checked natively (not counting `unsupported` answers).
    pub(crate) native_checks: u64,
}

/// The `types` interface holds only types: nothing for the host to provide.
impl crate::bindings::gitlab_azure::oidc::types::Host for State {}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// wasmtime's [`StoreLimits`] plus a record of the largest linear memory the guest grew to.
pub(crate) struct Limiter {
    inner: StoreLimits,
    pub(crate) peak_memory: usize,
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

/// The loaded component: compile once, instantiate cheaply for every call.
#[derive(Clone)]
pub struct Host {
    engine: Engine,
    pre: OidcPre<State>,
    pub(crate) limits: Limits,
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
    pub(crate) fn refuel(&self, store: &mut Store<State>) -> Result<(), HostError> {
        if self.tuning.fuel {
            store.set_fuel(self.limits.fuel_per_call).map_err(classify)?;
        }
        Ok(())
    }

    /// A fresh instance in a fresh, bounded store.
    pub(crate) fn instantiate(&self) -> Result<(Store<State>, Oidc), HostError> {
        let limits = StoreLimitsBuilder::new()
            .memory_size(self.limits.memory_bytes)
            .instances(4)
            .trap_on_grow_failure(true)
            .build();
        let state = State {
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
            limits: Limiter { inner: limits, peak_memory: 0 },
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
}
