//! AWS Secrets Manager error mapping: the one place its error codes are interpreted.

use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};

use crate::error::{Error, ErrorKind};

/// Maps an SDK error to ours. `what` says what was being done (`creating prod/db`).
pub fn map<E, R>(e: SdkError<E, R>, what: &str) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    let kind_msg = match &e {
        SdkError::ServiceError(se) => {
            let err = se.err();
            let code = err.code().unwrap_or("Unknown");
            let msg = err.message().unwrap_or("").to_string();
            let kind = match code {
                "ThrottlingException" | "TooManyRequestsException" | "RequestLimitExceeded" => {
                    ErrorKind::Throttled
                }
                "AccessDeniedException" | "AccessDenied" | "UnrecognizedClientException" => {
                    ErrorKind::PermissionDenied
                }
                "ExpiredTokenException" | "InvalidClientTokenId" | "ExpiredToken" => {
                    ErrorKind::Auth
                }
                "LimitExceededException" => ErrorKind::Limit,
                "ResourceExistsException" | "PreconditionNotMetException" => ErrorKind::Conflict,
                "InternalServiceError" | "InternalFailure" | "ServiceUnavailable" => {
                    ErrorKind::Unavailable
                }
                _ => ErrorKind::Unexpected,
            };
            let hint = match kind {
                ErrorKind::PermissionDenied => {
                    "; grant the role the secretsmanager permission for this action"
                }
                ErrorKind::Auth => "; refresh the AWS credentials",
                _ => "",
            };
            (kind, format!("{code}: {msg}{hint}"))
        }
        SdkError::TimeoutError(_) => (ErrorKind::Unavailable, "request timed out".into()),
        SdkError::DispatchFailure(d) => (
            ErrorKind::Unavailable,
            format!(
                "cannot reach AWS Secrets Manager: {:?}",
                d.as_connector_error().map(|c| c.to_string())
            ),
        ),
        other => (
            ErrorKind::Unexpected,
            aws_smithy_types::error::display::DisplayErrorContext(other).to_string(),
        ),
    };
    Error::new(kind_msg.0, format!("{what}: {}", kind_msg.1))
}

/// The error code of a service error, if it is one.
pub fn code<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> Option<&str> {
    match e {
        SdkError::ServiceError(se) => se.err().code(),
        _ => None,
    }
}
