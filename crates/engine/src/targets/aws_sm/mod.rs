//! The `aws_secretsmanager` target.
//!
//! ```yaml
//! targets:
//!   - name: production-us-east-1
//!     type: aws_secretsmanager
//!     region: us-east-1
//!     role_arn: arn:aws:iam::123456789012:role/SecretSync   # optional; external_id: optional
//!     secret_prefix: prod/            # AWS name = prefix + relative path
//!     imports: [base, production]
//!     overrides: { environment: production }
//!     delete_orphans: false           # delete managed secrets no longer desired
//!     deletion_recovery_days: 30      # 7..30; force_delete: true skips the window
//!     max_deletes: 50                 # more orphans than this fails the target, deletes nothing
//!     adopt: false                    # take over existing unmanaged secrets of desired names
//!     concurrency: 8                  # concurrent writes
//!     writes_per_second: 40           # pacing below the ~50/s AWS write quota
//! ```
//!
//! Plan: `ListSecrets` (100 per page, pending deletions included) gives names, tags and the
//! `AWSCURRENT` version; values are read with `BatchGetSecretValue` (20 per call) only for
//! secrets whose tags do not prove them unchanged. Apply: creates and updates run
//! concurrently (bounded and paced), deletions after every write succeeded; on a failure the
//! target is rolled back (created secrets deleted, `AWSCURRENT` moved back, deletions
//! restored) and the report says what could not be undone.

mod client;
pub mod error;

pub use client::AwsSmTarget;
