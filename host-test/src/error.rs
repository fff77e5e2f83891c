//! Why the host could not get an answer from the component.

use std::fmt;

use wasmtime::Trap;

/// Why the host could not get an answer from the component (the component's own refusals are
/// [`crate::Failure`] values, not this).
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

/// A guest call's error as a [`HostError::Trap`].
pub(crate) fn classify(err: wasmtime::Error) -> HostError {
    match err.downcast_ref::<Trap>() {
        Some(trap) => {
            HostError::Trap { detail: trap.to_string(), out_of_fuel: *trap == Trap::OutOfFuel }
        }
        None => HostError::Trap { detail: format!("{err:#}"), out_of_fuel: false },
    }
}
