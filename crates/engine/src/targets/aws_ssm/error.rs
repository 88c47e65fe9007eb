//! Parameter Store error mapping: the one place its error codes are interpreted (the codes
//! every AWS service shares, and the SDK's transport errors, are read by
//! [`crate::aws::map_error`]).

use aws_sdk_ssm::error::SdkError;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

use crate::aws::{CallCounter, Failed, OperationError, Sent, ServiceErrors, map_error};
use crate::error::{Error, ErrorKind};

pub use crate::aws::error_code as code;

const SERVICE: ServiceErrors = ServiceErrors {
    name: "AWS Systems Manager",
    kind: |code| {
        Some(match code {
            "TooManyUpdates" => ErrorKind::Throttled,
            "ParameterLimitExceeded"
            | "ParameterMaxVersionLimitExceeded"
            | "HierarchyLevelLimitExceededException"
            | "TooManyTagsError" => ErrorKind::Limit,
            "ParameterAlreadyExists" | "HierarchyTypeMismatchException" => ErrorKind::Conflict,
            "InvalidKeyId" => ErrorKind::Config,
            "InternalServerError" => ErrorKind::Unavailable,
            _ => return None,
        })
    },
    hint: |kind, code| match (kind, code) {
        (ErrorKind::PermissionDenied, _) => {
            "; grant the role the ssm permission for this action (and kms:Encrypt/Decrypt on the parameter's key)"
        }
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
    },
};

/// Maps a failed call to ours. `what` says what was being done (`writing /prod/db`).
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

    /// Parameter Store's own codes, and those every AWS service shares.
    #[test]
    fn error_codes() {
        crate::aws::check_error_codes(
            super::map,
            &[
                ("TooManyUpdates", Throttled, "TooManyUpdates: m"),
                ("ThrottlingException", Throttled, "ThrottlingException: m"),
                (
                    "AccessDeniedException",
                    PermissionDenied,
                    "AccessDeniedException: m; grant the role the ssm permission for this action (and kms:Encrypt/Decrypt on the parameter's key)",
                ),
                (
                    "ExpiredToken",
                    Auth,
                    "ExpiredToken: m; refresh the AWS credentials",
                ),
                (
                    "InvalidKeyId",
                    Config,
                    "InvalidKeyId: m; check `kms_key_id` (a key id, ARN, alias or alias ARN the role may use)",
                ),
                (
                    "ParameterAlreadyExists",
                    Conflict,
                    "ParameterAlreadyExists: m; it was created by someone else after the plan was made: run again",
                ),
                ("TooManyTagsError", Limit, "TooManyTagsError: m"),
                ("InternalServerError", Unavailable, "InternalServerError: m"),
                ("ServiceUnavailable", Unavailable, "ServiceUnavailable: m"),
                // Another service's code means nothing here.
                (
                    "TooManyRequestsException",
                    Unexpected,
                    "TooManyRequestsException: m",
                ),
            ],
        );
    }
}
