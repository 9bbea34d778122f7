//! All logic of the secret-lifecycle steps (RFC-SECOPS-0001 section 5). The step binaries
//! are thin: `steps/<name>/src/main.rs` calls [`run::main`] with an entry from [`steps`].
//!
//! Data flow: Kubernetes ([`kube`]) -> values in non-printing types ([`secret`]) -> Vault
//! ([`vault`]); between steps only references ([`reference`]) travel, in Argo output files
//! ([`outputs`]). Every action leaves an audit record ([`audit`]).

pub mod audit;
pub mod audit_authority;
pub mod authority;
pub mod batch;
pub mod cli;
pub mod error;
pub mod eso;
pub mod exit;
pub mod handover;
pub mod kube;
pub mod outputs;
pub mod paths;
pub mod plan;
pub mod push;
pub mod reference;
pub mod retry;
pub mod rotation;
pub mod run;
pub mod secret;
pub mod selection;
pub mod steps;
pub mod vault;
pub mod vocab;

pub use error::{Error, Result};
pub use exit::Exit;
