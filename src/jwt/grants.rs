//! Token claims and the channel grants they carry.

use serde::Deserialize;
use serde_json::Value;

/// The claims Sinew reads.
#[derive(Debug, Clone, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// Channel names or patterns (a trailing `*` matches any rest) this token may join.
    #[serde(default)]
    pub channels: Vec<String>,
    /// Presence user info and sign-in `user_info`.
    #[serde(default)]
    pub user_info: Option<Value>,
    /// Ids to watch after sign-in.
    #[serde(default)]
    pub watchlist: Option<Vec<String>>,
    /// Issued-at (checked against the clock with the leeway).
    #[serde(default)]
    pub iat: Option<u64>,
}

/// Whether `channel` is granted by one of the `patterns`.
pub fn channel_granted(patterns: &[String], channel: &str) -> bool {
    patterns.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => channel.starts_with(prefix),
        None => p == channel,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        let g = vec!["private-user-42".to_string(), "presence-room-*".to_string()];
        assert!(channel_granted(&g, "private-user-42"));
        assert!(!channel_granted(&g, "private-user-421"));
        assert!(channel_granted(&g, "presence-room-1"));
        assert!(channel_granted(&g, "presence-room-"));
        assert!(!channel_granted(&g, "presence-other"));
        assert!(!channel_granted(&[], "private-a"));
        assert!(channel_granted(&["*".to_string()], "private-a"));
    }
}
