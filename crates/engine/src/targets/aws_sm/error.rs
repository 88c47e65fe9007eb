//! AWS Secrets Manager error mapping: the one place its error codes are interpreted (the
//! codes every AWS service shares, and the SDK's transport errors, are read by
//! [`crate::aws::map_error`]).

use aws_sdk_secretsmanager::error::SdkError;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

use crate::aws::{CallCounter, Failed, OperationError, Sent, ServiceErrors, map_error};
use crate::error::{Error, ErrorKind};

pub use crate::aws::error_code as code;

const SERVICE: ServiceErrors = ServiceErrors {
    name: "AWS Secrets Manager",
    kind: |code| {
        Some(match code {
            "TooManyRequestsException" => ErrorKind::Throttled,
            "LimitExceededException" => ErrorKind::Limit,
            "ResourceExistsException" | "PreconditionNotMetException" => ErrorKind::Conflict,
            "InternalServiceError" => ErrorKind::Unavailable,
            _ => return None,
        })
    },
    hint: |kind, _| match kind {
        ErrorKind::PermissionDenied => {
            "; grant the role the secretsmanager permission for this action"
        }
        _ => "",
    },
};

/// Maps a failed call to ours. `what` says what was being done (`creating prod/db`).
pub fn map<E: OperationError>(e: Failed<E>, what: &str) -> Error {
    map_error(e, what, &SERVICE)
}

/// Makes one call through the retry layer ([`CallCounter::send`]) with this service's error
/// codes deciding what is retried.
pub async fn send<T, E, F, Fut>(calls: &CallCounter, operation: &'static str, call: F) -> Sent<T, E>
where
    E: OperationError,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, SdkError<E, HttpResponse>>>,
{
    calls.send(&SERVICE, operation, call).await
}

#[cfg(test)]
mod tests {
    use crate::error::ErrorKind::*;

    /// Secrets Manager's own codes, and those every AWS service shares.
    #[test]
    fn error_codes() {
        crate::aws::check_error_codes(
            super::map,
            &[
                (
                    "TooManyRequestsException",
                    Throttled,
                    "TooManyRequestsException: m",
                ),
                ("RequestLimitExceeded", Throttled, "RequestLimitExceeded: m"),
                (
                    "AccessDenied",
                    PermissionDenied,
                    "AccessDenied: m; grant the role the secretsmanager permission for this action",
                ),
                (
                    "InvalidClientTokenId",
                    Auth,
                    "InvalidClientTokenId: m; refresh the AWS credentials",
                ),
                ("LimitExceededException", Limit, "LimitExceededException: m"),
                (
                    "ResourceExistsException",
                    Conflict,
                    "ResourceExistsException: m",
                ),
                (
                    "PreconditionNotMetException",
                    Conflict,
                    "PreconditionNotMetException: m",
                ),
                (
                    "InternalServiceError",
                    Unavailable,
                    "InternalServiceError: m",
                ),
                ("InternalFailure", Unavailable, "InternalFailure: m"),
                // Another service's code means nothing here.
                ("TooManyUpdates", Unexpected, "TooManyUpdates: m"),
            ],
        );
    }
}
