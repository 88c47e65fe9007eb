//! Parameter Store error mapping: the one place its error codes are interpreted.

use aws_sdk_ssm::error::{ProvideErrorMetadata, SdkError};

use crate::error::{Error, ErrorKind};

/// Maps an SDK error to ours. `what` says what was being done (`writing /prod/db`).
pub fn map<E, R>(e: SdkError<E, R>, what: &str) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    let (kind, msg) = match &e {
        SdkError::ServiceError(se) => {
            let err = se.err();
            let code = err.code().unwrap_or("Unknown");
            let msg = err.message().unwrap_or("").to_string();
            let kind = match code {
                "ThrottlingException" | "TooManyUpdates" | "RequestLimitExceeded" => {
                    ErrorKind::Throttled
                }
                "AccessDeniedException" | "AccessDenied" | "UnrecognizedClientException" => {
                    ErrorKind::PermissionDenied
                }
                "ExpiredTokenException" | "InvalidClientTokenId" | "ExpiredToken" => {
                    ErrorKind::Auth
                }
                "ParameterLimitExceeded"
                | "ParameterMaxVersionLimitExceeded"
                | "HierarchyLevelLimitExceededException"
                | "TooManyTagsError" => ErrorKind::Limit,
                "ParameterAlreadyExists" | "HierarchyTypeMismatchException" => ErrorKind::Conflict,
                "InvalidKeyId" => ErrorKind::Config,
                "InternalServerError" | "InternalFailure" | "ServiceUnavailable" => {
                    ErrorKind::Unavailable
                }
                _ => ErrorKind::Unexpected,
            };
            let hint = match (kind, code) {
                (ErrorKind::PermissionDenied, _) => {
                    "; grant the role the ssm permission for this action (and kms:Encrypt/Decrypt on the parameter's key)"
                }
                (ErrorKind::Auth, _) => "; refresh the AWS credentials",
                (_, "InvalidKeyId") => {
                    "; check `kms_key_id` (a key id, ARN, alias or alias ARN the role may use)"
                }
                (_, "HierarchyTypeMismatchException") => {
                    "; the existing parameter has another type: delete it and run again (SecretSync recreates it as a SecureString)"
                }
                (_, "ParameterAlreadyExists") => {
                    "; it was created by someone else after the plan was made: run again"
                }
                (_, "ParameterLimitExceeded") => {
                    "; the account has reached its number of parameters in this region (raise the quota or use the Advanced tier)"
                }
                _ => "",
            };
            (kind, format!("{code}: {msg}{hint}"))
        }
        SdkError::TimeoutError(_) => (ErrorKind::Unavailable, "request timed out".into()),
        SdkError::DispatchFailure(d) => (
            ErrorKind::Unavailable,
            format!(
                "cannot reach AWS Systems Manager: {:?}",
                d.as_connector_error().map(|c| c.to_string())
            ),
        ),
        other => (
            ErrorKind::Unexpected,
            aws_smithy_types::error::display::DisplayErrorContext(other).to_string(),
        ),
    };
    Error::new(kind, format!("{what}: {msg}"))
}

/// The error code of a service error, if it is one.
pub fn code<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> Option<&str> {
    match e {
        SdkError::ServiceError(se) => se.err().code(),
        _ => None,
    }
}
