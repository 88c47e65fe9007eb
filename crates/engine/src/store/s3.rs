//! The S3 merge store's objects: `<prefix><key>` in one bucket. Every object is written with
//! server-side encryption: SSE-KMS with `kms_key_id` when set, SSE-S3 (AES256) otherwise.
//! S3 status codes and error codes are interpreted here and nowhere else.

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::delete_objects::DeleteObjectsOutput;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier, ServerSideEncryption};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

use super::Objects;
use crate::aws::{CallCounter, Failed, OperationError, Sent, ServiceErrors, error_code, map_error};
use crate::error::{Error, ErrorKind, Result};

/// At most this many keys per `DeleteObjects` call (the S3 limit).
const DELETE_BATCH: usize = 1000;

pub struct S3Objects {
    client: Client,
    calls: CallCounter,
    bucket: String,
    prefix: String,
    kms_key_id: Option<String>,
}

/// S3's error codes (the merge store's and the S3 leases'); those every AWS service shares
/// and the SDK's transport errors are read by [`crate::aws::map_error`].
pub(crate) const SERVICE: ServiceErrors = ServiceErrors {
    name: "S3",
    kind: |code| {
        Some(match code {
            "NoSuchBucket" => ErrorKind::Config,
            "SlowDown" => ErrorKind::Throttled,
            "InternalError" => ErrorKind::Unavailable,
            "PreconditionFailed" | "ConditionalRequestConflict" => ErrorKind::Conflict,
            _ => return None,
        })
    },
    hint: |kind, code| match (kind, code) {
        (_, "NoSuchBucket") => "; create the bucket or fix `merge_store.bucket`",
        (ErrorKind::PermissionDenied, _) => {
            "; grant s3:GetObject, s3:PutObject, s3:DeleteObject and s3:ListBucket on the merge store's prefix (its `.secretsync/locks/*` included)"
        }
        _ => "",
    },
};

/// Maps a failed S3 call to ours. `what` says what was being done (`writing s3://b/k`).
pub(crate) fn map<E: OperationError>(e: Failed<E>, what: &str) -> Error {
    map_error(e, what, &SERVICE)
}

/// Makes one S3 call through the retry layer ([`CallCounter::send`]).
pub(crate) async fn send<T, E, F, Fut>(
    calls: &CallCounter,
    operation: &'static str,
    call: F,
) -> Sent<T, E>
where
    E: OperationError,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, SdkError<E, HttpResponse>>>,
{
    calls.send(&SERVICE, operation, call).await
}

/// The HTTP status of the last attempt's answer, if there was one.
pub(crate) fn status<E>(e: &Failed<E>) -> Option<u16> {
    e.sdk.raw_response().map(|r| r.status().as_u16())
}

fn is_not_found<E: ProvideErrorMetadata>(e: &Failed<E>) -> bool {
    matches!(error_code(e), Some("NoSuchKey" | "NotFound"))
}

/// A conditional write lost: 412 (the object exists) or 409 (a concurrent conditional write).
pub(crate) fn is_precondition_failed<E: ProvideErrorMetadata>(e: &Failed<E>) -> bool {
    matches!(status(e), Some(412 | 409))
        || matches!(
            error_code(e),
            Some("PreconditionFailed" | "ConditionalRequestConflict")
        )
}

/// The per-key errors of a `DeleteObjects` answer (in quiet mode it lists only failures), as
/// one error naming every key left undeleted.
pub fn delete_errors(out: &DeleteObjectsOutput, bucket: &str) -> Result<()> {
    if out.errors().is_empty() {
        return Ok(());
    }
    let failed: Vec<String> = out
        .errors()
        .iter()
        .map(|e| {
            format!(
                "s3://{bucket}/{} ({}: {})",
                e.key().unwrap_or("?"),
                e.code().unwrap_or("Unknown"),
                e.message().unwrap_or("")
            )
        })
        .collect();
    let denied = out
        .errors()
        .iter()
        .any(|e| e.code() == Some("AccessDenied"));
    Err(Error::new(
        if denied {
            ErrorKind::PermissionDenied
        } else {
            ErrorKind::Unexpected
        },
        format!(
            "{} object(s) could not be deleted: {}; fix the cause (for AccessDenied grant s3:DeleteObject) and re-run",
            failed.len(),
            failed.join(", ")
        ),
    ))
}

impl S3Objects {
    /// Objects in `bucket` under `prefix` through `client`, whose calls `calls` counts (and
    /// retries).
    pub fn new(
        client: Client,
        calls: CallCounter,
        bucket: String,
        prefix: String,
        kms_key_id: Option<String>,
    ) -> Self {
        S3Objects {
            client,
            calls,
            bucket,
            prefix,
            kms_key_id,
        }
    }

    fn full(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn put_request(
        &self,
        key: &str,
        body: &[u8],
    ) -> aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder {
        let req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(self.full(key))
            .content_type("application/json")
            .body(ByteStream::from(body.to_vec()));
        match &self.kms_key_id {
            Some(k) => req
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .ssekms_key_id(k),
            None => req.server_side_encryption(ServerSideEncryption::Aes256),
        }
    }
}

#[async_trait]
impl Objects for S3Objects {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        match send(&self.calls, "GetObject", || {
            self.client
                .get_object()
                .bucket(&self.bucket)
                .key(self.full(key))
                .send()
        })
        .await
        {
            Ok(o) => {
                let bytes = o.body.collect().await.map_err(|e| {
                    Error::new(
                        ErrorKind::Unavailable,
                        format!("reading {}: {e}", self.describe(key)),
                    )
                })?;
                Ok(Some(bytes.into_bytes().to_vec()))
            }
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(map(e, &format!("reading {}", self.describe(key)))),
        }
    }

    async fn put(&self, key: &str, body: &[u8]) -> Result<()> {
        send(&self.calls, "PutObject", || {
            self.put_request(key, body).send()
        })
        .await
        .map_err(|e| map(e, &format!("writing {}", self.describe(key))))?;
        Ok(())
    }

    async fn create(&self, key: &str, body: &[u8]) -> Result<bool> {
        match send(&self.calls, "PutObject", || {
            self.put_request(key, body).if_none_match("*").send()
        })
        .await
        {
            Ok(_) => Ok(true),
            Err(e) if is_precondition_failed(&e) => Ok(false),
            Err(e) => Err(map(e, &format!("creating {}", self.describe(key)))),
        }
    }

    async fn delete_many(&self, keys: &[String]) -> Result<()> {
        for chunk in keys.chunks(DELETE_BATCH) {
            let objects = chunk
                .iter()
                .map(|k| ObjectIdentifier::builder().key(self.full(k)).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| Error::new(ErrorKind::Unexpected, e.to_string()))?;
            let del = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(|e| Error::new(ErrorKind::Unexpected, e.to_string()))?;
            let out = send(&self.calls, "DeleteObjects", || {
                self.client
                    .delete_objects()
                    .bucket(&self.bucket)
                    .delete(del.clone())
                    .send()
            })
            .await
            .map_err(|e| map(e, &format!("deleting objects in {}", self.location())))?;
            delete_errors(&out, &self.bucket)?;
        }
        Ok(())
    }

    async fn list(&self, dir: &str) -> Result<Vec<String>> {
        let prefix = self.full(dir);
        let suffix = self.suffix();
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = send(&self.calls, "ListObjectsV2", || {
                self.client
                    .list_objects_v2()
                    .bucket(&self.bucket)
                    .prefix(&prefix)
                    .delimiter("/")
                    .set_continuation_token(token.clone())
                    .send()
            })
            .await
            .map_err(|e| map(e, &format!("listing {}", self.describe(dir))))?;
            out.extend(page.contents().iter().filter_map(|o| {
                let name = o.key()?.strip_prefix(&prefix)?;
                Some(name.strip_suffix(suffix).unwrap_or(name).to_string())
            }));
            out.extend(
                page.common_prefixes()
                    .iter()
                    .filter_map(|p| Some(p.prefix()?.strip_prefix(&prefix)?.to_string())),
            );
            token = page.next_continuation_token().map(str::to_string);
            if token.as_deref().is_none_or(str::is_empty) {
                break;
            }
        }
        Ok(out)
    }

    fn suffix(&self) -> &'static str {
        ".json"
    }

    fn describe(&self, key: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.full(key))
    }

    fn location(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }

    fn encryption_key(&self) -> Option<&str> {
        self.kms_key_id.as_deref()
    }

    /// `HeadObject`; under another key (or SSE-S3): `CopyObject` onto itself with SSE-KMS and
    /// the configured key, metadata copied (`MetadataDirective: COPY`).
    async fn reencrypt(&self, key: &str) -> Result<bool> {
        let Some(kms) = self.kms_key_id.as_deref() else {
            return Ok(false);
        };
        let full = self.full(key);
        let head = match send(&self.calls, "HeadObject", || {
            self.client
                .head_object()
                .bucket(&self.bucket)
                .key(&full)
                .send()
        })
        .await
        {
            Ok(h) => h,
            Err(e) if is_not_found(&e) => return Ok(false),
            Err(e) => {
                return Err(map(
                    e,
                    &format!("reading the encryption of {}", self.describe(key)),
                ));
            }
        };
        let under = (head.server_side_encryption() == Some(&ServerSideEncryption::AwsKms))
            .then(|| head.ssekms_key_id())
            .flatten();
        if secretsync_core::targets::aws_sm::kms_matches(kms, under, None) {
            return Ok(false);
        }
        let source = format!("{}/{}", self.bucket, percent_encode_key(&full));
        send(&self.calls, "CopyObject", || {
            self.client
                .copy_object()
                .bucket(&self.bucket)
                .key(&full)
                .copy_source(&source)
                .metadata_directive(aws_sdk_s3::types::MetadataDirective::Copy)
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .ssekms_key_id(kms)
                .send()
        })
        .await
        .map_err(|e| map(e, &format!("re-encrypting {}", self.describe(key))))?;
        Ok(true)
    }
}

/// A key as `x-amz-copy-source` wants it: URL-encoded, `/` kept.
fn percent_encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_s3::types::Error as S3KeyError;

    #[test]
    fn copy_sources_are_url_encoded() {
        assert_eq!(percent_encode_key("m/t/a b+c.json"), "m/t/a%20b%2Bc.json");
        assert_eq!(percent_encode_key("m/ü"), "m/%C3%BC");
    }

    #[test]
    fn delete_objects_per_key_errors_name_every_key() {
        let ok = DeleteObjectsOutput::builder().build();
        assert!(delete_errors(&ok, "b").is_ok());
        let out = DeleteObjectsOutput::builder()
            .errors(
                S3KeyError::builder()
                    .key("merged/t/a.json")
                    .code("AccessDenied")
                    .message("Access Denied")
                    .build(),
            )
            .errors(
                S3KeyError::builder()
                    .key("merged/t/b.json")
                    .code("InternalError")
                    .build(),
            )
            .build();
        let e = delete_errors(&out, "b").unwrap_err();
        assert_eq!(e.kind, ErrorKind::PermissionDenied);
        assert!(
            e.message.contains("s3://b/merged/t/a.json (AccessDenied")
                && e.message.contains("s3://b/merged/t/b.json (InternalError")
                && e.message.starts_with("2 object(s) could not be deleted"),
            "{}",
            e.message
        );
    }
}
