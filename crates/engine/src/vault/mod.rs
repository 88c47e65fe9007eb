//! The Vault KV v2 source: client (auth, renewal, list/read) and the source reader
//! (breadth-first listing, limits, bounded reads).
//!
//! ```yaml
//! vault:
//!   address: https://vault.example.com
//!   auth: { approle: { role_id: ${VAULT_ROLE_ID}, secret_id: ${VAULT_SECRET_ID} } }
//! vault_sources:
//!   - mount: secret/base/
//!     max_secrets: 10000
//! ```

pub mod client;
pub mod source;

pub use client::{Login, ReadOutcome, VaultClient};
pub use source::{ResolvedSource, read_source};
