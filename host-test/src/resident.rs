//! A component resource that lives across calls in its own instance, and comes back after a
//! trap: the handle keeps what it was built from and rebuilds the instance on the next call.

use wasmtime::component::ResourceAny;
use wasmtime::Store;

use crate::bindings::Oidc;
use crate::engine::State;
use crate::error::classify;
use crate::{Failure, Host, HostError};

/// The live instance and the resource in it.
pub(crate) struct Live {
    pub(crate) store: Store<State>,
    pub(crate) oidc: Oidc,
    pub(crate) resource: ResourceAny,
}

/// What a resident resource keeps to be built again.
pub(crate) trait Recipe {
    /// Builds the resource in a fresh instance.
    fn construct(
        &self,
        store: &mut Store<State>,
        oidc: &Oidc,
    ) -> wasmtime::Result<Result<ResourceAny, Failure>>;
}

/// A resource in its own instance, rebuilt from its [`Recipe`] after a trap.
pub(crate) struct Resident<R: Recipe> {
    host: Host,
    pub(crate) recipe: R,
    live: Option<Live>,
}

impl<R: Recipe> Resident<R> {
    /// Builds the resource; the inner result is the component's verdict on the recipe.
    pub(crate) fn new(host: &Host, recipe: R) -> Result<Result<Self, Failure>, HostError> {
        let mut resident = Self { host: host.clone(), recipe, live: None };
        Ok(resident.revive()?.map(|()| resident))
    }

    fn revive(&mut self) -> Result<Result<(), Failure>, HostError> {
        let (mut store, oidc) = self.host.instantiate()?;
        let built = self.recipe.construct(&mut store, &oidc).map_err(classify)?;
        Ok(built.map(|resource| self.live = Some(Live { store, oidc, resource })))
    }

    /// Runs `call` against the live instance, reviving it first if a trap killed it. A trap
    /// discards the instance; the next call gets a fresh one.
    pub(crate) fn call<T>(
        &mut self,
        call: impl FnOnce(&mut Live) -> wasmtime::Result<T>,
    ) -> Result<T, HostError> {
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

    /// The largest linear memory the live instance has grown to, in bytes.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.live.as_ref().map_or(0, |l| l.store.data().limits.peak_memory)
    }

    /// How many signatures the live instance had the host check natively.
    pub(crate) fn native_signature_checks(&self) -> u64 {
        self.live.as_ref().map_or(0, |l| l.store.data().native_checks)
    }

    /// Changes the execution bound of later calls.
    pub(crate) fn set_fuel_per_call(&mut self, fuel: u64) {
        self.host.limits.fuel_per_call = fuel;
    }
}

impl<R: Recipe> Drop for Resident<R> {
    fn drop(&mut self) {
        if let Some(mut live) = self.live.take() {
            // Dropping the store frees everything anyway; this runs the guest destructor first.
            let _ = live.resource.resource_drop(&mut live.store);
        }
    }
}
