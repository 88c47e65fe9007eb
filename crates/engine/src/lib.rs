//! SecretSync's engine: everything that talks to Vault and AWS, and the pipeline that drives
//! the pure core (`secretsync-core`) between them.

pub mod audit;
pub mod aws;
pub mod breaker;
pub mod cancel;
pub mod discovery;
pub mod error;
pub mod history;
pub mod hook;
pub mod lease;
pub mod metrics;
pub mod notify;
pub mod observe;
pub mod pacing;
pub mod pipeline;
pub mod policy;
pub mod restore;
pub mod retry;
pub mod rotation;
pub mod store;
pub mod targets;
mod tls;
pub mod vault;

pub use error::{Error, ErrorKind, Result};
pub use secretsync_core as core;
