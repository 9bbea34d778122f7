//! All logic of the secret-lifecycle steps (RFC-SECOPS-0001 section 5). The step binaries
//! are thin: `steps/<name>/src/main.rs` calls [`run::main`] with an entry from [`steps`].
//!
//! Data flow: Kubernetes ([`kube`]) -> values in non-printing types ([`secret`]) -> Vault
//! ([`vault`]); between steps only references ([`reference`]) travel, in Argo output files
//! ([`outputs`]). Every action leaves an audit record ([`audit`]).
//!
//! Without the default `io` feature only the pure, input-facing modules build (for `fuzz/`).

#[cfg(feature = "io")]
pub mod audit;
#[cfg(feature = "io")]
pub mod audit_authority;
#[cfg(feature = "io")]
pub mod audit_event;
#[cfg(feature = "io")]
pub mod authority;
#[cfg(feature = "io")]
pub mod batch;
#[cfg(feature = "io")]
pub mod cli;
#[cfg(feature = "io")]
pub mod console;
#[cfg(feature = "io")]
pub mod context;
pub mod error;
#[cfg(feature = "io")]
pub mod eso;
pub mod exit;
#[cfg(feature = "io")]
pub mod fleet;
#[cfg(feature = "io")]
pub mod gitops;
#[cfg(feature = "io")]
pub mod handover;
pub mod identity;
pub mod inert;
#[cfg(feature = "io")]
pub mod kube;
pub mod names;
#[cfg(feature = "io")]
pub mod outputs;
pub mod paths;
#[cfg(feature = "io")]
pub mod plan;
#[cfg(feature = "io")]
pub mod provenance;
#[cfg(feature = "io")]
pub mod push;
pub mod reference;
#[cfg(feature = "io")]
pub mod retry;
#[cfg(feature = "io")]
pub mod rotation;
#[cfg(feature = "io")]
pub mod run;
pub mod secret;
pub mod selection;
#[cfg(feature = "io")]
pub mod snapshot;
#[cfg(feature = "io")]
pub mod steps;
#[cfg(feature = "io")]
pub mod throttle;
pub mod variant_name;
#[cfg(feature = "io")]
pub mod vault;
pub mod vocab;

pub use error::{Error, Result};
pub use exit::Exit;
