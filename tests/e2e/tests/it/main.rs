//! End-to-end tests: the step binaries as processes over HTTP. One test binary (fast links).

mod audit_authority;
mod authority;
mod fixtures;
mod handover;
mod leaks;
mod least_privilege;
mod push;
mod refusals;
mod rotate;
mod rustyvault;
mod templates;
mod vault_outage;
