//! Leases as objects in the S3 merge store's bucket (when one is configured).
//!
//! The lease for key `k` is `<prefix>.secretsync/locks/<k>.json` (the key encoded like lock
//! secret names, [`super::encode_key`]) holding the [`LeaseRecord`] as JSON, written with
//! server-side encryption like the rest of the store (SSE-KMS with the store's key when set,
//! AES256 otherwise).
//!
//! * create: `PutObject` with `If-None-Match: *` (412 when held);
//! * compare-and-swap (takeover, renewal): `PutObject` with `If-Match: <ETag read>` (412 when
//!   someone else wrote first, 404 when it was deleted). Every record carries a fresh nonce,
//!   so two writes never share an ETag;
//! * read: `GetObject` (body and ETag);
//! * release: `DeleteObject` with `If-Match: <our ETag>` (S3 general purpose buckets honour
//!   it since 2025-09).
//!
//! Concurrent conditional writes to one key may also answer 409 `ConditionalRequestConflict`;
//! that counts as "someone else was first".
//!
//! Permissions on `<prefix>.secretsync/locks/*`: `s3:GetObject`, `s3:PutObject`,
//! `s3:DeleteObject`.

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;

use super::{LeaseBackend, LeaseRecord, Stored, encode_key};
use crate::aws::{CallCounter, Failed};
use crate::error::{Error, ErrorKind, Result};
use crate::store::s3::{is_precondition_failed, map, send, status};

pub struct S3Leases {
    client: Client,
    calls: CallCounter,
    bucket: String,
    prefix: String,
    kms_key_id: Option<String>,
}

impl S3Leases {
    /// Leases in `bucket` under `prefix` (the merge store's, `""` or ending in `/`).
    pub fn new(
        client: Client,
        calls: CallCounter,
        bucket: String,
        prefix: String,
        kms_key_id: Option<String>,
    ) -> Self {
        S3Leases {
            client,
            calls,
            bucket,
            prefix,
            kms_key_id,
        }
    }

    /// The object key of the lease for `key`.
    pub fn object_key(&self, key: &str) -> String {
        format!("{}.secretsync/locks/{}.json", self.prefix, encode_key(key))
    }

    fn url(&self, key: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.object_key(key))
    }

    async fn put(&self, key: &str, record: &LeaseRecord, cond: Cond<'_>) -> Result<Option<String>> {
        let body = record.to_json().into_bytes();
        // A body is a stream: each attempt gets its own request.
        let request = || {
            let req = self
                .client
                .put_object()
                .bucket(&self.bucket)
                .key(self.object_key(key))
                .content_type("application/json")
                .body(ByteStream::from(body.clone()));
            let req = match cond {
                Cond::Absent => req.if_none_match("*"),
                Cond::Is(etag) => req.if_match(etag),
            };
            match &self.kms_key_id {
                Some(k) => req
                    .server_side_encryption(ServerSideEncryption::AwsKms)
                    .ssekms_key_id(k),
                None => req.server_side_encryption(ServerSideEncryption::Aes256),
            }
        };
        match send(&self.calls, "PutObject", || request().send()).await {
            Ok(o) => match o.e_tag() {
                Some(t) => Ok(Some(t.to_string())),
                None => Err(Error::new(
                    ErrorKind::Unexpected,
                    format!("writing {}: S3 returned no ETag", self.url(key)),
                )),
            },
            Err(e) if refused(&e) => Ok(None),
            Err(e) => Err(map(e, &format!("writing {}", self.url(key)))),
        }
    }
}

enum Cond<'a> {
    Absent,
    Is(&'a str),
}

/// 412 (precondition failed), 409 (a concurrent conditional write) or 404 (gone).
fn refused<E: aws_sdk_s3::error::ProvideErrorMetadata>(e: &Failed<E>) -> bool {
    matches!(status(e), Some(404))
        || is_precondition_failed(e)
        || crate::aws::error_code(e) == Some("NoSuchKey")
}

#[async_trait]
impl LeaseBackend for S3Leases {
    fn location(&self, key: &str) -> String {
        format!("lock object {}", self.url(key))
    }

    async fn try_create(&self, key: &str, record: &LeaseRecord) -> Result<bool> {
        Ok(self.put(key, record, Cond::Absent).await?.is_some())
    }

    async fn current(&self, key: &str) -> Result<Option<Stored>> {
        let url = self.url(key);
        let o = match send(&self.calls, "GetObject", || {
            self.client
                .get_object()
                .bucket(&self.bucket)
                .key(self.object_key(key))
                .send()
        })
        .await
        {
            Ok(o) => o,
            Err(e)
                if matches!(crate::aws::error_code(&e), Some("NoSuchKey" | "NotFound"))
                    || status(&e) == Some(404) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(map(e, &format!("reading {url}"))),
        };
        let Some(token) = o.e_tag().map(str::to_string) else {
            return Err(Error::new(
                ErrorKind::Unexpected,
                format!("reading {url}: S3 returned no ETag"),
            ));
        };
        let bytes = o
            .body
            .collect()
            .await
            .map_err(|e| Error::new(ErrorKind::Unavailable, format!("reading {url}: {e}")))?;
        let text = String::from_utf8(bytes.into_bytes().to_vec()).map_err(|_| {
            Error::new(
                ErrorKind::Unexpected,
                format!("{url} is not UTF-8; if no SecretSync run is active, delete it"),
            )
        })?;
        Ok(Some(Stored {
            record: LeaseRecord::from_json(&text, &url)?,
            token,
        }))
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: &str,
        record: &LeaseRecord,
    ) -> Result<Option<String>> {
        self.put(key, record, Cond::Is(expected)).await
    }

    async fn delete_if_current(&self, key: &str, ours: &Stored) -> Result<bool> {
        match send(&self.calls, "DeleteObject", || {
            self.client
                .delete_object()
                .bucket(&self.bucket)
                .key(self.object_key(key))
                .if_match(&ours.token)
                .send()
        })
        .await
        {
            Ok(_) => Ok(true),
            Err(e) if refused(&e) => Ok(false),
            Err(e) => Err(map(e, &format!("deleting {}", self.url(key)))),
        }
    }
}
