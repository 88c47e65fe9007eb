pub use secretsync_core;
