//! One error type for every AWS call, classified so callers can branch on what matters:
//! a failed precondition means "the lock changed, stop"; not-found and access-denied are
//! configuration problems to report; throttling is transient.

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// What kind of failure an AWS call had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AwsErrorKind {
    /// The table, bucket, key or topic does not exist.
    NotFound,
    /// The caller's role may not do this.
    AccessDenied,
    /// A conditional write or delete found something other than what was read.
    ConditionFailed,
    /// S3 answered that the bucket is in another region than the client's (301
    /// `PermanentRedirect`, or a request signed for the wrong region).
    WrongRegion,
    /// Throttled or a 5xx after the SDK's own retries: try again later.
    Transient,
    /// Anything else (bad request, unreachable endpoint, ...).
    Other,
}

/// A failed AWS call: what was being done, to what, and why it failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{action} {resource}: {message}")]
pub struct AwsError {
    pub kind: AwsErrorKind,
    /// e.g. "scan table", "list lock files in".
    pub action: &'static str,
    /// e.g. `tf-locks`, `s3://bucket/prefix`.
    pub resource: String,
    /// The error code (when AWS sent one) and message, with the SDK's context.
    pub message: String,
}

impl AwsError {
    pub fn is_condition_failed(&self) -> bool {
        self.kind == AwsErrorKind::ConditionFailed
    }

    pub fn is_not_found(&self) -> bool {
        self.kind == AwsErrorKind::NotFound
    }

    /// The result of a conditional write: `Ok(true)` when it was made, `Ok(false)` when its
    /// condition did not hold (another writer got there first, or the item changed meanwhile),
    /// `Err` for any other failure.
    pub fn conditional<T, E>(
        result: Result<T, SdkError<E, Response>>,
        action: &'static str,
        resource: impl Into<String>,
    ) -> Result<bool, AwsError>
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        match result {
            Ok(_) => Ok(true),
            Err(e) => {
                let err = AwsError::from_sdk(e, action, resource);
                if err.is_condition_failed() {
                    Ok(false)
                } else {
                    Err(err)
                }
            }
        }
    }

    /// Builds an error from any SDK operation error.
    pub fn from_sdk<E>(
        err: SdkError<E, Response>,
        action: &'static str,
        resource: impl Into<String>,
    ) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let status = err.raw_response().map(|r| r.status().as_u16());
        let code = err.code().map(str::to_owned);
        let kind = classify(code.as_deref(), status, &err);
        // Prefer what AWS said (code + message): the SDK's full context embeds the raw HTTP
        // response, which buries the reason in hundreds of characters.
        let message = match (&code, err.message(), status) {
            (Some(code), Some(msg), _) => format!("{code}: {msg}"),
            (Some(code), None, Some(status)) => format!("{code} (HTTP {status})"),
            (None, _, Some(status)) => format!("HTTP {status}: {}", short_context(&err)),
            (Some(code), None, None) => format!("{code}: {}", short_context(&err)),
            (None, _, None) => short_context(&err),
        };
        AwsError {
            kind,
            action,
            resource: resource.into(),
            message,
        }
    }
}

/// The SDK's error context without the raw response dump (dispatch and timeout errors keep their
/// cause chain, which is what says "connection refused" or "timed out").
fn short_context<E, R>(err: &SdkError<E, R>) -> String
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let text = DisplayErrorContext(err).to_string();
    match text.find(" raw: Response") {
        Some(i) => text[..i].trim_end_matches([',', ' ']).to_owned(),
        None => text,
    }
}

fn classify<E, R>(code: Option<&str>, status: Option<u16>, err: &SdkError<E, R>) -> AwsErrorKind {
    match code {
        Some(
            "ResourceNotFoundException"
            | "NoSuchBucket"
            | "NoSuchKey"
            | "NotFound"
            | "NotFoundException"
            // IAM (e.g. SimulatePrincipalPolicy on a role that does not exist)
            | "NoSuchEntity",
        ) => return AwsErrorKind::NotFound,
        Some(
            "AccessDenied"
            | "AccessDeniedException"
            | "UnauthorizedOperation"
            | "AuthorizationError"
            | "AuthorizationErrorException",
        ) => return AwsErrorKind::AccessDenied,
        // S3's answers for a bucket in another region: 301 PermanentRedirect (with
        // `x-amz-bucket-region`; a HEAD gets the bare 301) from the client's regional endpoint,
        // and AuthorizationHeaderMalformed / IllegalLocationConstraintException when the request
        // was signed for the wrong region.
        // https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html
        Some(
            "PermanentRedirect"
            | "AuthorizationHeaderMalformed"
            | "IllegalLocationConstraintException",
        ) => return AwsErrorKind::WrongRegion,
        Some(
            "ConditionalCheckFailedException" | "PreconditionFailed" | "ConditionalRequestConflict",
        ) => return AwsErrorKind::ConditionFailed,
        Some(
            "ThrottlingException"
            | "Throttling"
            | "ThrottledException"
            | "ProvisionedThroughputExceededException"
            | "RequestLimitExceeded"
            | "SlowDown"
            | "InternalServerError"
            | "ServiceUnavailable"
            | "InternalFailure",
        ) => return AwsErrorKind::Transient,
        _ => {}
    }
    match status {
        Some(404) => AwsErrorKind::NotFound,
        Some(403) => AwsErrorKind::AccessDenied,
        Some(301) => AwsErrorKind::WrongRegion,
        Some(412) => AwsErrorKind::ConditionFailed,
        Some(429) => AwsErrorKind::Transient,
        Some(s) if s >= 500 => AwsErrorKind::Transient,
        Some(_) => AwsErrorKind::Other,
        None => match err {
            SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => AwsErrorKind::Transient,
            _ => AwsErrorKind::Other,
        },
    }
}
