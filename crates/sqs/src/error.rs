//! SQS errors: each kind with the code both protocols carry (the JSON
//! protocol's `__type` shape name, the query protocol's `Code`), its HTTP
//! status and whether the sender is at fault, so SDKs raise their typed
//! exceptions.

use nimbus_store::StoreError;

/// The errors the endpoint answers with. The names are the shapes of the
/// SQS service model (what the JSON protocol's `__type` names); see
/// [`SqsErrorKind::query_code`] for the query protocol's codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqsErrorKind {
    QueueDoesNotExist,
    QueueNameExists,
    ReceiptHandleIsInvalid,
    EmptyBatchRequest,
    TooManyEntriesInBatchRequest,
    BatchEntryIdsNotDistinct,
    InvalidBatchEntryId,
    BatchRequestTooLong,
    InvalidAttributeName,
    InvalidMessageContents,
    UnsupportedOperation,
    // Common AWS errors (not modeled as SQS shapes).
    InvalidParameterValue,
    MissingParameter,
    InvalidAction,
    MalformedQueryString,
    RequestEntityTooLarge,
    AccessDenied,
    InvalidClientTokenId,
    SignatureDoesNotMatch,
    IncompleteSignature,
    MissingAuthenticationToken,
    InternalError,
    ServiceUnavailable,
}

impl SqsErrorKind {
    /// The shape name: the JSON protocol's `__type` after `#`.
    pub fn name(self) -> &'static str {
        use SqsErrorKind as K;
        match self {
            K::QueueDoesNotExist => "QueueDoesNotExist",
            K::QueueNameExists => "QueueNameExists",
            K::ReceiptHandleIsInvalid => "ReceiptHandleIsInvalid",
            K::EmptyBatchRequest => "EmptyBatchRequest",
            K::TooManyEntriesInBatchRequest => "TooManyEntriesInBatchRequest",
            K::BatchEntryIdsNotDistinct => "BatchEntryIdsNotDistinct",
            K::InvalidBatchEntryId => "InvalidBatchEntryId",
            K::BatchRequestTooLong => "BatchRequestTooLong",
            K::InvalidAttributeName => "InvalidAttributeName",
            K::InvalidMessageContents => "InvalidMessageContents",
            K::UnsupportedOperation => "UnsupportedOperation",
            K::InvalidParameterValue => "InvalidParameterValue",
            K::MissingParameter => "MissingParameter",
            K::InvalidAction => "InvalidAction",
            K::MalformedQueryString => "MalformedQueryString",
            K::RequestEntityTooLarge => "RequestEntityTooLarge",
            K::AccessDenied => "AccessDenied",
            K::InvalidClientTokenId => "InvalidClientTokenId",
            K::SignatureDoesNotMatch => "SignatureDoesNotMatch",
            K::IncompleteSignature => "IncompleteSignature",
            K::MissingAuthenticationToken => "MissingAuthenticationToken",
            K::InternalError => "InternalError",
            K::ServiceUnavailable => "ServiceUnavailable",
        }
    }

    /// The query protocol's code (the `error.code` of the query-protocol
    /// service model, which the JSON protocol also sends in
    /// `x-amzn-query-error` for SDKs that map by it); the shape name where
    /// that model gives none.
    pub fn query_code(self) -> &'static str {
        use SqsErrorKind as K;
        match self {
            K::QueueDoesNotExist => "AWS.SimpleQueueService.NonExistentQueue",
            K::QueueNameExists => "QueueAlreadyExists",
            K::EmptyBatchRequest => "AWS.SimpleQueueService.EmptyBatchRequest",
            K::TooManyEntriesInBatchRequest => {
                "AWS.SimpleQueueService.TooManyEntriesInBatchRequest"
            }
            K::BatchEntryIdsNotDistinct => "AWS.SimpleQueueService.BatchEntryIdsNotDistinct",
            K::InvalidBatchEntryId => "AWS.SimpleQueueService.InvalidBatchEntryId",
            K::BatchRequestTooLong => "AWS.SimpleQueueService.BatchRequestTooLong",
            K::UnsupportedOperation => "AWS.SimpleQueueService.UnsupportedOperation",
            other => other.name(),
        }
    }

    pub fn status(self) -> http::StatusCode {
        use SqsErrorKind as K;
        match self {
            K::AccessDenied
            | K::InvalidClientTokenId
            | K::SignatureDoesNotMatch
            | K::MissingAuthenticationToken => http::StatusCode::FORBIDDEN,
            K::InternalError => http::StatusCode::INTERNAL_SERVER_ERROR,
            K::ServiceUnavailable => http::StatusCode::SERVICE_UNAVAILABLE,
            _ => http::StatusCode::BAD_REQUEST,
        }
    }

    /// `Sender` or `Receiver`, as both protocols say whose fault it was.
    pub fn fault(self) -> &'static str {
        match self {
            SqsErrorKind::InternalError | SqsErrorKind::ServiceUnavailable => "Receiver",
            _ => "Sender",
        }
    }
}

/// An error answer: its kind and a message for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqsError {
    pub kind: SqsErrorKind,
    pub message: String,
}

/// How much of a message built from client input an error carries.
const MAX_MESSAGE_CHARS: usize = 300;

impl SqsError {
    pub fn new(kind: SqsErrorKind, message: impl Into<String>) -> Self {
        let mut message: String = message.into();
        if message.chars().count() > MAX_MESSAGE_CHARS {
            message = message.chars().take(MAX_MESSAGE_CHARS).collect::<String>() + "...";
        }
        SqsError { kind, message }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        SqsError::new(SqsErrorKind::InvalidParameterValue, message)
    }

    pub fn missing(parameter: &str) -> Self {
        SqsError::new(
            SqsErrorKind::MissingParameter,
            format!("the request must contain the parameter {parameter}"),
        )
    }

    pub fn no_queue(queue: &str) -> Self {
        SqsError::new(
            SqsErrorKind::QueueDoesNotExist,
            format!(
                "the queue `{queue}` does not exist (the version being served does not declare it)"
            ),
        )
    }

    pub fn invalid_receipt() -> Self {
        SqsError::new(
            SqsErrorKind::ReceiptHandleIsInvalid,
            "the receipt handle is not current: the message was deleted, or received again since",
        )
    }
}

/// A store failure as an SQS error; internals go to the log, not the client.
impl From<StoreError> for SqsError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::QueueNotFound(queue) => SqsError::no_queue(&queue),
            StoreError::StaleReceipt | StoreError::MessageNotFound(_) => {
                SqsError::invalid_receipt()
            }
            StoreError::MessageTooLarge { size, limit } => SqsError::invalid(format!(
                "One or more parameters are invalid. Reason: the message with its attributes is {size} bytes, over the queue's limit of {limit} bytes"
            )),
            StoreError::InvalidMessage(why) => {
                SqsError::invalid(format!("One or more parameters are invalid. Reason: {why}"))
            }
            StoreError::Unavailable(why) => {
                tracing::warn!(error = %why, "sqs: the store is unavailable");
                SqsError::new(
                    SqsErrorKind::ServiceUnavailable,
                    "the store is unavailable; try again",
                )
            }
            other => {
                tracing::error!(error = %other, "sqs: the store failed");
                SqsError::new(SqsErrorKind::InternalError, "internal error")
            }
        }
    }
}
