//! The `aws_ssm` target: AWS Systems Manager Parameter Store.
//!
//! ```yaml
//! targets:
//!   - name: params
//!     type: aws_ssm
//!     region: us-east-1
//!     role_arn: arn:aws:iam::123456789012:role/SecretSync   # optional; external_id: optional
//!     secret_prefix: /myorg/prod/     # parameter name = prefix + relative path (+ /<key>)
//!     mapping: per_key                # whole (default): one parameter holding the JSON
//!     kms_key_id: alias/params        # optional: the SecureStrings' KMS key
//!     imports: [base]
//!     delete_orphans: false           # delete managed parameters no longer desired
//!     max_deletes: 50                 # more orphan secrets than this deletes nothing
//!     adopt: false                    # take over existing unmanaged parameters
//!     concurrency: 4                  # secrets written at once
//!     writes_per_second: 3            # the default: Parameter Store's standard write quota
//! ```
//!
//! Every parameter is a `SecureString` carrying the ownership tags (`managed-by`,
//! `secretsync:owner`, `secretsync:target`, `secretsync:fingerprint` of the whole secret,
//! `secretsync:version` = the parameter version the tool wrote) and `secretsync:path` (the
//! secret's relative path). How secrets map to parameters, and the limits, are in
//! `secretsync_core::targets::aws_ssm`.
//!
//! Plan: Parameter Store lists no tags, and reading them costs one `ListTagsForResource` per
//! parameter. Instead one `DescribeParameters` listing under the prefix with `tag:` filters
//! (managed-by, owner, target; 50 per page) finds this target's parameters (with
//! `adopt_from`, a second one finds the adopted targets' and reads their tags), their current
//! values are read with `GetParameters` (10 per call, decrypted), and content is proven by those
//! values, not by the fingerprint tag, so an out-of-band edit is always seen. Desired names
//! the listing does not know are looked up exactly (`DescribeParameters` by `Name`, 50 per
//! call, plus the managed-by filter; tags are read only for other owners' or targets'): an
//! unmanaged parameter is never written without `adopt: true`, another target's never. A
//! no-change run of P parameters costs ⌈P/50⌉ listing pages, ⌈P/10⌉ `GetParameters`, one
//! `GetParameter` for the fingerprint key and the lease's Secrets Manager calls.
//!
//! Apply: each secret is one change (with `per_key`: added keys become new parameters, changed
//! ones are overwritten, removed ones deleted), written concurrently (bounded, every write call
//! paced); orphans are deleted last with `DeleteParameters` (10 per call) — Parameter Store
//! has no recovery window, so a deletion is final once the apply succeeded. On a failure
//! everything is rolled back: overwritten parameters get their previous value back (as a new
//! version) and their tags, created ones are deleted, deleted ones are recreated with their
//! value and tags (as version 1). The lease lives in Secrets Manager in the same account and
//! region (Parameter Store has no compare-and-swap).

mod client;
pub mod error;

pub use client::AwsSsmTarget;
