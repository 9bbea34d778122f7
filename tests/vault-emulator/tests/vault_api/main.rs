//! Integration tests: a started emulator driven over loopback HTTP with reqwest, as
//! step binaries drive Vault. Each test cites the Vault source or doc it follows.

mod common;

mod acl;
mod binary;
mod envelope;
mod faults;
mod kubernetes;
mod kv2_cas;
mod kv2_metadata;
mod kv2_versions;
mod lifecycle;
mod password_policies;
mod random;
mod sys;
mod tokens;
