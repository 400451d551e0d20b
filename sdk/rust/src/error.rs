//! The errors the SDK returns.

/// Everything that can go wrong when signing, publishing or verifying.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A channel name is empty, longer than 200 bytes or has a character outside `[A-Za-z0-9_\-=@,.;]`.
    #[error("invalid channel name {0:?}")]
    InvalidChannel(String),
    /// A socket id is not of the form `digits.digits`.
    #[error("invalid socket id {0:?}")]
    InvalidSocketId(String),
    /// A user id is empty.
    #[error("invalid user id {0:?}")]
    InvalidUserId(String),
    /// An event name is empty or longer than 200 bytes.
    #[error("invalid event name {0:?}")]
    InvalidEventName(String),
    /// More than 100 channels in one trigger.
    #[error("cannot trigger to {0} channels at once (at most 100)")]
    TooManyChannels(usize),
    /// A query parameter would override one of the signature parameters.
    #[error("query parameter {0:?} is reserved for the request signature")]
    ReservedParameter(String),
    /// Publishing to a `private-encrypted-` channel needs payload encryption, which this SDK does not do.
    #[error("publishing to encrypted channel {0:?} is not supported by this SDK")]
    EncryptedPublish(String),
    /// An encrypted channel was authorized but no master key was configured.
    #[error("authorizing {0:?} needs an encryption master key")]
    MissingMasterKey(String),
    /// The encryption master key is not base64 of exactly 32 bytes.
    #[error("the encryption master key must be base64 of 32 bytes")]
    InvalidMasterKey,
    /// The base URL is not `http://host[:port]` or `https://host[:port]`.
    #[error("invalid base URL {0:?}")]
    InvalidBaseUrl(String),
    /// Data could not be serialized, or a response was not the JSON expected.
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The request did not complete (connection refused, timeout, TLS).
    #[error("request failed: {0}")]
    Http(#[from] reqwest::Error),
    /// The server answered with a status other than 2xx.
    #[error("server answered {status}: {body}")]
    Status {
        /// HTTP status code.
        status: u16,
        /// Response body text.
        body: String,
    },
}

/// Why a webhook was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WebhookError {
    /// No `X-Pusher-Key` header.
    #[error("missing X-Pusher-Key header")]
    MissingKey,
    /// The `X-Pusher-Key` header names another app.
    #[error("X-Pusher-Key does not match this app")]
    WrongKey,
    /// No `X-Pusher-Signature` header.
    #[error("missing X-Pusher-Signature header")]
    MissingSignature,
    /// The signature does not match the body.
    #[error("X-Pusher-Signature does not match the body")]
    BadSignature,
    /// The body is signed correctly but is not a webhook JSON document.
    #[error("webhook body is not valid JSON: {0}")]
    Body(String),
}
