//! When a cluster operation counts as failed, and the error the REST API reports for it.

use tokio::time::Duration;

/// How long one Redis (or NATS) round trip may take before it counts as failed.
pub(super) const OP_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a cluster-wide answer could not be given.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// Redis did not answer.
    #[error("the cluster state in Redis is unavailable: {0}")]
    Unavailable(String),
}

impl From<redis::RedisError> for ClusterError {
    fn from(e: redis::RedisError) -> Self {
        ClusterError::Unavailable(e.to_string())
    }
}
