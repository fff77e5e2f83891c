//! The engine: the component compiled once, and a fresh, bounded store for every instance.
//!
//! Machine code comes from one of two places. Long-lived hosts compile the component in the
//! process, with Cranelift's optimizations for this CPU ([`Tuning::default`]). A one-shot process
//! (the CLI: a CI job runs it once) loads the copy `make` precompiled at build time and embedded in
//! this binary ([`Tuning::one_shot`]): compiling costs about a second on a CI runner, loading
//! a few milliseconds. Both use the same engine configuration ([`config`]), and wasmtime refuses
//! precompiled code whose configuration or version differs, so a stale or foreign copy falls back
//! to compiling ([`Origin::Fallback`]) instead of running.

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

/// [`EMBEDDED_COMPONENT`] compiled at build time by this crate's own engine configuration
/// ([`Host::precompile`], run by `make` through the CLI's hidden `precompile` command). `build.rs`
/// embeds it only when its header names the SHA-256 of the component embedded beside it.
#[cfg(embedded_precompiled)]
const EMBEDDED_PRECOMPILED: Option<&[u8]> =
    Some(include_bytes!(concat!(env!("OUT_DIR"), "/component.cwasm")));
#[cfg(not(embedded_precompiled))]
const EMBEDDED_PRECOMPILED: Option<&[u8]> = None;

/// The first bytes of a file [`Host::precompile`] writes; the SHA-256 of the component follows,
/// then wasmtime's serialized component. `build.rs` reads the same layout.
pub(crate) const PRECOMPILED_MAGIC: &[u8; 16] = b"gao-cwasm-v1\0\0\0\0";

/// The target the build-time copy is compiled for: this binary's own (`build.rs` passes cargo's
/// `TARGET`). Naming it explicitly also stops Cranelift from using the build machine's CPU
/// extensions (AVX2 and the like), so the copy runs on any x86-64 runner.
const TARGET: &str = env!("GITLAB_AZURE_OIDC_TARGET");

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
    /// Optimize what is compiled in this process (Cranelift's `speed` level). Defaults to true.
    /// The build-time copy is always optimized; this only matters when compiling at run time.
    pub optimize: bool,
    /// Load the embedded component's build-time compiled copy instead of compiling it, when this
    /// binary has one that this engine accepts ([`Host::origin`] says what happened). Defaults to
    /// false: the copy is compiled for a baseline x86-64, while a long-lived host gains from
    /// code compiled for its own CPU.
    pub precompiled: bool,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            fuel: true,
            pooling: false,
            native_signatures: true,
            optimize: true,
            precompiled: false,
        }
    }
}

impl Tuning {
    /// For a process that makes a few calls and exits: the build-time copy when there is one
    /// (about a millisecond to load instead of about a second to compile), otherwise a compile
    /// without Cranelift's optimizations, which cuts compiling by about a third; with signatures
    /// checked natively, the little code that runs barely notices.
    pub fn one_shot() -> Self {
        Self { optimize: false, precompiled: true, ..Self::default() }
    }
}

/// How a [`Host`] got its machine code.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Origin {
    /// Compiled in this process.
    Compiled,
    /// [`Tuning::precompiled`] asked for the build-time copy, which could not be used (the
    /// reason says why: none embedded, or wasmtime refused it); compiled in this process instead.
    Fallback(String),
    /// Loaded from the build-time copy embedded in this binary.
    Precompiled,
}

/// The engine configuration every path shares: compiling in the process, precompiling at build
/// time and loading the precompiled copy. wasmtime records it in precompiled code and refuses a
/// copy made with another (fuel, features, memory layout), so the copy cannot drift from it.
fn config(tuning: Tuning) -> Config {
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
    config
}

/// Loads the build-time copy of the embedded component into `engine`.
///
/// # Errors
/// A message when this binary has no copy, or when wasmtime refuses it (another wasmtime
/// version, or an engine configured differently).
#[allow(unsafe_code)]
fn load_precompiled(engine: &Engine) -> Result<Component, String> {
    let bytes = EMBEDDED_PRECOMPILED.ok_or_else(|| {
        "this binary has no precompiled component (build it with `make`)".to_owned()
    })?;
    // SAFETY: `Component::deserialize` runs the machine code it is given, so the bytes must be
    // trusted. These are this binary's own: `make` compiled them from `EMBEDDED_COMPONENT` with
    // this crate's `config` in the same build (`Host::precompile`), and `build.rs` embedded them
    // read-only beside that component only when their header carries its SHA-256. Whoever could
    // change them could change the binary itself. wasmtime then checks what it can: the bytes
    // must be a serialized component from the same wasmtime version, for this architecture and
    // OS, with the same engine settings and CPU features this machine has; on any mismatch it
    // returns an error (we compile instead) and never runs the code.
    unsafe { Component::deserialize(engine, bytes) }
        .map_err(|e| format!("the precompiled component does not load here: {e:#}"))
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
    origin: Origin,
}

impl Host {
    /// Compiles and links a component.
    ///
    /// # Errors
    /// [`HostError::Load`] when the bytes are not a component with the expected world.
    pub fn new(component: &[u8], limits: Limits) -> Result<Self, HostError> {
        Self::with_tuning(component, limits, Tuning::default())
    }

    /// Compiles and links a component with explicit engine settings ([`Tuning::precompiled`]
    /// does not apply: these bytes are compiled).
    ///
    /// # Errors
    /// [`HostError::Load`] when the bytes are not a component with the expected world.
    pub fn with_tuning(
        component: &[u8],
        limits: Limits,
        tuning: Tuning,
    ) -> Result<Self, HostError> {
        Self::compile(component, limits, tuning, Origin::Compiled)
    }

    fn compile(
        component: &[u8],
        limits: Limits,
        tuning: Tuning,
        origin: Origin,
    ) -> Result<Self, HostError> {
        let engine = Engine::new(&config(tuning)).map_err(load)?;
        let component = Component::new(&engine, component).map_err(load)?;
        Self::link(engine, &component, limits, tuning, origin)
    }

    fn link(
        engine: Engine,
        component: &Component,
        limits: Limits,
        tuning: Tuning,
        origin: Origin,
    ) -> Result<Self, HostError> {
        let mut linker = Linker::<State>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(load)?;
        Oidc::add_to_linker::<State, HasSelf<State>>(&mut linker, |state| state).map_err(load)?;
        let pre = OidcPre::new(linker.instantiate_pre(component).map_err(load)?).map_err(load)?;
        Ok(Self { engine, pre, limits, tuning, origin })
    }

    /// The component embedded in this binary.
    ///
    /// # Errors
    /// [`HostError::NoComponent`] when none was embedded, or a load error.
    pub fn embedded(limits: Limits) -> Result<Self, HostError> {
        Self::embedded_with_tuning(limits, Tuning::default())
    }

    /// The embedded component with explicit engine settings: with [`Tuning::precompiled`], its
    /// build-time copy when this engine accepts it, otherwise compiled ([`Host::origin`]).
    ///
    /// # Errors
    /// As [`Host::embedded`].
    pub fn embedded_with_tuning(limits: Limits, tuning: Tuning) -> Result<Self, HostError> {
        let component = EMBEDDED_COMPONENT.ok_or(HostError::NoComponent)?;
        if !tuning.precompiled {
            return Self::compile(component, limits, tuning, Origin::Compiled);
        }
        let engine = Engine::new(&config(tuning)).map_err(load)?;
        match load_precompiled(&engine) {
            Ok(compiled) => Self::link(engine, &compiled, limits, tuning, Origin::Precompiled),
            Err(why) => Self::compile(component, limits, tuning, Origin::Fallback(why)),
        }
    }

    /// Only the build-time copy: for checking a build (the CLI's hidden `self-check`).
    ///
    /// # Errors
    /// [`HostError::Load`] when this binary has no copy or wasmtime refuses it.
    pub fn precompiled(limits: Limits, tuning: Tuning) -> Result<Self, HostError> {
        let engine = Engine::new(&config(tuning)).map_err(load)?;
        let compiled = load_precompiled(&engine).map_err(HostError::Load)?;
        Self::link(engine, &compiled, limits, tuning, Origin::Precompiled)
    }

    /// Compiles `component` ahead of time for this binary's target, with the configuration of
    /// `tuning` and Cranelift's optimizations, and returns the file `build.rs` embeds:
    /// a 16-byte magic, the component's SHA-256, then wasmtime's serialized component.
    ///
    /// # Errors
    /// [`HostError::Load`] when the bytes are not a component or do not compile.
    pub fn precompile(component: &[u8], tuning: Tuning) -> Result<Vec<u8>, HostError> {
        let mut config = config(Tuning { optimize: true, ..tuning });
        config.target(TARGET).map_err(load)?;
        let engine = Engine::new(&config).map_err(load)?;
        // Link it as `embedded_with_tuning` will, so a copy that could not be linked is never
        // written.
        let compiled = Component::new(&engine, component).map_err(load)?;
        Self::link(engine.clone(), &compiled, Limits::default(), tuning, Origin::Compiled)?;
        let serialized = compiled.serialize().map_err(load)?;
        let digest = ring::digest::digest(&ring::digest::SHA256, component);
        let mut out = Vec::with_capacity(PRECOMPILED_MAGIC.len() + 32 + serialized.len());
        out.extend_from_slice(PRECOMPILED_MAGIC);
        out.extend_from_slice(digest.as_ref());
        out.extend_from_slice(&serialized);
        Ok(out)
    }

    /// Where this host's machine code came from.
    pub fn origin(&self) -> &Origin {
        &self.origin
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

fn load(e: wasmtime::Error) -> HostError {
    HostError::Load(format!("{e:#}"))
}

#[cfg(test)]
mod tests {
    use super::PRECOMPILED_MAGIC;

    #[test]
    fn build_rs_reads_the_layout_precompile_writes() {
        let build_rs = include_str!("../build.rs");
        let literal = String::from_utf8_lossy(PRECOMPILED_MAGIC).replace('\0', "\\0");
        assert!(build_rs.contains(&format!("b\"{literal}\"")), "magic differs from build.rs");
    }
}
