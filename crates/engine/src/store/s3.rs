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
use crate::error::{Error, ErrorKind, Result};

/// At most this many keys per `DeleteObjects` call (the S3 limit).
const DELETE_BATCH: usize = 1000;

pub struct S3Objects {
    client: Client,
    bucket: String,
    prefix: String,
    kms_key_id: Option<String>,
}

fn map<E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static>(
    e: SdkError<E, HttpResponse>,
    what: &str,
) -> Error {
    let (kind, msg) = match &e {
        SdkError::ServiceError(se) => {
            let code = se.err().code().unwrap_or("Unknown").to_string();
            let kind = match code.as_str() {
                "AccessDenied" => ErrorKind::PermissionDenied,
                "NoSuchBucket" => ErrorKind::Config,
                "SlowDown" => ErrorKind::Throttled,
                "InternalError" | "ServiceUnavailable" => ErrorKind::Unavailable,
                _ => ErrorKind::Unexpected,
            };
            let hint = match code.as_str() {
                "NoSuchBucket" => "; create the bucket or fix `merge_store.bucket`",
                "AccessDenied" => {
                    "; grant s3:GetObject, s3:PutObject, s3:DeleteObject and s3:ListBucket on the merge store"
                }
                _ => "",
            };
            (
                kind,
                format!("{code}: {}{hint}", se.err().message().unwrap_or("")),
            )
        }
        SdkError::TimeoutError(_) => (
            ErrorKind::Unavailable,
            "S3 did not answer in time (timed out); check the network path to S3 and re-run"
                .to_string(),
        ),
        SdkError::DispatchFailure(_) => (ErrorKind::Unavailable, "cannot reach S3".to_string()),
        other => (
            ErrorKind::Unexpected,
            aws_smithy_types::error::display::DisplayErrorContext(other).to_string(),
        ),
    };
    Error::new(kind, format!("{what}: {msg}"))
}

fn is_not_found<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> bool {
    matches!(e, SdkError::ServiceError(se) if matches!(se.err().code(), Some("NoSuchKey") | Some("NotFound")))
}

/// A conditional write lost: 412 (the object exists) or 409 (a concurrent conditional write).
fn is_precondition_failed<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> bool {
    match e {
        SdkError::ServiceError(se) => {
            matches!(se.raw().status().as_u16(), 412 | 409)
                || matches!(
                    se.err().code(),
                    Some("PreconditionFailed") | Some("ConditionalRequestConflict")
                )
        }
        _ => false,
    }
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
    pub fn new(client: Client, bucket: String, prefix: String, kms_key_id: Option<String>) -> Self {
        S3Objects {
            client,
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
        match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.full(key))
            .send()
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
        self.put_request(key, body)
            .send()
            .await
            .map_err(|e| map(e, &format!("writing {}", self.describe(key))))?;
        Ok(())
    }

    async fn create(&self, key: &str, body: &[u8]) -> Result<bool> {
        match self.put_request(key, body).if_none_match("*").send().await {
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
            let out = self
                .client
                .delete_objects()
                .bucket(&self.bucket)
                .delete(del)
                .send()
                .await
                .map_err(|e| map(e, &format!("deleting objects in {}", self.location())))?;
            delete_errors(&out, &self.bucket)?;
        }
        Ok(())
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_s3::types::Error as S3KeyError;

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
