//! The S3 merge store. Every object is written with server-side encryption: SSE-KMS with
//! `kms_key_id` when set, SSE-S3 (AES256) otherwise.

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier, ServerSideEncryption};
use futures::{StreamExt, TryStreamExt, stream};
use secretsync_core::secret::{Bundle, SecretValue};
use tracing::debug;

use super::{Manifest, MergeStore, WriteStats, changed_paths};
use crate::error::{Error, ErrorKind, Result};

pub struct S3Store {
    client: Client,
    bucket: String,
    prefix: String,
    kms_key_id: Option<String>,
}

fn map<E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static, R: std::fmt::Debug>(
    e: SdkError<E, R>,
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
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
            (ErrorKind::Unavailable, "cannot reach S3".to_string())
        }
        other => (
            ErrorKind::Unexpected,
            aws_smithy_types::error::display::DisplayErrorContext(other).to_string(),
        ),
    };
    Error::new(kind, format!("{what}: {msg}"))
}

fn is_not_found<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    matches!(e, SdkError::ServiceError(se) if matches!(se.err().code(), Some("NoSuchKey") | Some("NotFound")))
}

impl S3Store {
    pub fn new(client: Client, bucket: String, prefix: String, kms_key_id: Option<String>) -> Self {
        S3Store {
            client,
            bucket,
            prefix,
            kms_key_id,
        }
    }

    fn secret_key(&self, bundle: &str, path: &str) -> String {
        format!("{}{bundle}/{path}.json", self.prefix)
    }

    fn manifest_key(&self, bundle: &str) -> String {
        format!("{}{bundle}.bundle.json", self.prefix)
    }

    async fn put(&self, key: &str, body: Vec<u8>) -> Result<()> {
        let mut req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/json")
            .body(ByteStream::from(body));
        req = match &self.kms_key_id {
            Some(k) => req
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .ssekms_key_id(k),
            None => req.server_side_encryption(ServerSideEncryption::Aes256),
        };
        req.send()
            .await
            .map_err(|e| map(e, &format!("writing s3://{}/{key}", self.bucket)))?;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(o) => {
                let bytes = o.body.collect().await.map_err(|e| {
                    Error::new(
                        ErrorKind::Unavailable,
                        format!("reading s3://{}/{key}: {e}", self.bucket),
                    )
                })?;
                Ok(Some(bytes.into_bytes().to_vec()))
            }
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(map(e, &format!("reading s3://{}/{key}", self.bucket))),
        }
    }

    async fn manifest(&self, bundle: &str) -> Result<Option<Manifest>> {
        let key = self.manifest_key(bundle);
        match self.get(&key).await? {
            None => Ok(None),
            Some(b) => serde_json::from_slice(&b).map(Some).map_err(|e| {
                Error::new(
                    ErrorKind::Unexpected,
                    format!(
                        "s3://{}/{key} is not a SecretSync manifest: {e}",
                        self.bucket
                    ),
                )
            }),
        }
    }
}

#[async_trait]
impl MergeStore for S3Store {
    async fn write_bundle(&self, name: &str, bundle: &Bundle, run_id: &str) -> Result<WriteStats> {
        let old = self.manifest(name).await?.unwrap_or_default();
        let (write, delete, mut manifest) = changed_paths(&old, bundle);
        manifest.bundle = name.to_string();
        manifest.run_id = run_id.to_string();
        stream::iter(write.iter().cloned())
            .map(|p| async move {
                let v = &bundle[&p];
                self.put(&self.secret_key(name, &p), v.canonical_json().into_bytes())
                    .await
            })
            .buffer_unordered(16)
            .try_collect::<Vec<()>>()
            .await?;
        for chunk in delete.chunks(1000) {
            let objects: Vec<ObjectIdentifier> = chunk
                .iter()
                .filter_map(|p| {
                    ObjectIdentifier::builder()
                        .key(self.secret_key(name, p))
                        .build()
                        .ok()
                })
                .collect();
            let del = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(|e| Error::new(ErrorKind::Unexpected, e.to_string()))?;
            self.client
                .delete_objects()
                .bucket(&self.bucket)
                .delete(del)
                .send()
                .await
                .map_err(|e| map(e, &format!("deleting stale objects of bundle `{name}`")))?;
        }
        let body = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| Error::new(ErrorKind::Unexpected, e.to_string()))?;
        self.put(&self.manifest_key(name), body).await?;
        let stats = WriteStats {
            written: write.len(),
            unchanged: bundle.len() - write.len(),
            deleted: delete.len(),
        };
        debug!(
            bundle = name,
            written = stats.written,
            unchanged = stats.unchanged,
            deleted = stats.deleted,
            "wrote bundle to S3"
        );
        Ok(stats)
    }

    async fn read_bundle(&self, name: &str) -> Result<Option<Bundle>> {
        let Some(manifest) = self.manifest(name).await? else {
            return Ok(None);
        };
        let items: Vec<(String, SecretValue)> = stream::iter(manifest.secrets.keys().cloned())
            .map(|p| async move {
                let key = self.secret_key(name, &p);
                let bytes = self.get(&key).await?.ok_or_else(|| Error::new(ErrorKind::Unexpected, format!("s3://{}/{key} is listed in the manifest but missing; re-run the merge phase", self.bucket)))?;
                match serde_json::from_slice(&bytes) {
                    Ok(serde_json::Value::Object(m)) => Ok((p, SecretValue::new(m))),
                    _ => Err(Error::new(ErrorKind::Unexpected, format!("s3://{}/{key} is not a JSON object", self.bucket))),
                }
            })
            .buffer_unordered(16)
            .try_collect()
            .await?;
        Ok(Some(items.into_iter().collect()))
    }

    fn location(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }
}
