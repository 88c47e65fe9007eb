//! SecretSync's pure core: the secret model, configuration loading and validation, deep
//! merge, the inheritance graph and the merge phase's fold. Nothing here does network or
//! filesystem IO, reads the clock or the environment, or awaits.

pub mod audit;
pub mod config;
pub mod de;
pub mod diag;
pub mod diff;
pub mod discovery;
pub mod explain;
pub mod fingerprint;
pub mod fold;
pub mod graph;
pub mod history;
pub mod mask;
pub mod merge;
pub mod notify;
pub mod path;
pub mod planfile;
pub mod policy;
pub mod render;
pub mod rotation;
pub mod secret;
pub mod shard;
pub mod tags;
pub mod targets;
pub mod transform;
pub mod yaml;
