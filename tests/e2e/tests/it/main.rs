//! End-to-end tests: the step binaries as processes over HTTP. One test binary (fast links).

mod audit_authority;
mod audit_log;
mod authority;
mod bad_input;
mod batch;
mod chain;
mod cluster_loss;
mod crash;
mod drills;
mod dry_run;
mod faults;
mod fixtures;
mod fleet;
mod gitops;
mod handover;
mod kv1;
mod leaks;
mod least_privilege;
mod push;
mod races;
mod refusals;
mod rotate;
mod templates;
mod throttle;
mod tls;
mod vault_outage;
