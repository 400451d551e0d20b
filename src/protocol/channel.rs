//! Channel names: validation and the channel kind derived from the name's prefix.

/// What a channel's name prefix makes it. Prefixes are matched at the start of the name, longest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind {
    /// No prefix (or `cache-`): anyone may subscribe.
    Public,
    /// `private-`: subscription signed over `socket_id:channel`.
    Private,
    /// `private-encrypted-`: signed like private; payloads are end-to-end encrypted; no client events.
    Encrypted,
    /// `presence-`: signed over `socket_id:channel:channel_data`; tracks members.
    Presence,
    /// `#server-to-user-{id}`: only the socket signed in as `{id}` may subscribe.
    User,
}

/// A channel's kind plus whether it keeps its last event (`cache-` variants).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelType {
    /// Authorization and membership rules.
    pub kind: ChannelKind,
    /// True for `cache-`, `private-cache-`, `presence-cache-` and `private-encrypted-cache-`.
    pub cache: bool,
}

/// The prefix of the per-user channel a signed-in socket may subscribe to.
pub const USER_CHANNEL_PREFIX: &str = "#server-to-user-";

impl ChannelType {
    /// Classifies a channel name by its prefix (the name is not validated here).
    pub fn of(name: &str) -> Self {
        let (kind, cache) = if name.starts_with("private-encrypted-cache-") {
            (ChannelKind::Encrypted, true)
        } else if name.starts_with("private-encrypted-") {
            (ChannelKind::Encrypted, false)
        } else if name.starts_with("private-cache-") {
            (ChannelKind::Private, true)
        } else if name.starts_with("private-") {
            (ChannelKind::Private, false)
        } else if name.starts_with("presence-cache-") {
            (ChannelKind::Presence, true)
        } else if name.starts_with("presence-") {
            (ChannelKind::Presence, false)
        } else if name.starts_with("cache-") {
            (ChannelKind::Public, true)
        } else if name.starts_with(USER_CHANNEL_PREFIX) {
            (ChannelKind::User, false)
        } else {
            (ChannelKind::Public, false)
        };
        ChannelType { kind, cache }
    }

    /// Whether clients may send `client-*` events on this channel.
    pub fn allows_client_events(self) -> bool {
        matches!(self.kind, ChannelKind::Private | ChannelKind::Presence)
    }

    /// Whether a subscription needs an `auth` signature.
    pub fn needs_signature(self) -> bool {
        matches!(self.kind, ChannelKind::Private | ChannelKind::Encrypted | ChannelKind::Presence)
    }
}

/// Why a channel name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelNameError {
    /// The name is the empty string.
    #[error("channel name is empty")]
    Empty,
    /// The name is longer than the configured maximum.
    #[error("channel name is longer than {0} characters")]
    TooLong(usize),
    /// The name has a character outside `A-Za-z0-9_-=@,.;`.
    #[error("channel name has a character outside A-Za-z0-9_-=@,.;")]
    BadCharacter,
    /// A `#server-to-user-{id}` name whose id is not a valid user id.
    #[error("{0}")]
    UserId(UserIdError),
}

/// Why a user id was refused. One rule wherever a user id appears: `pusher:signin`, presence
/// `channel_data`, `#server-to-user-{id}` and `terminate_connections`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserIdError {
    /// The id is the empty string.
    #[error("user id is empty")]
    Empty,
    /// The id is longer than the configured maximum.
    #[error("user id is longer than {0} bytes")]
    TooLong(usize),
    /// The id has whitespace or a control character.
    #[error("user id has whitespace or a control character")]
    BadCharacter,
}

/// True for the characters channel names (and user ids) may use.
pub fn is_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'=' | b'@' | b',' | b'.' | b';')
}

/// Validates a channel name a client or publisher may use. `#server-to-user-{id}` is accepted when
/// `allow_user_channel` is true (the id must itself be a valid name).
pub fn validate_name(name: &str, max_len: usize, allow_user_channel: bool) -> Result<(), ChannelNameError> {
    if name.is_empty() {
        return Err(ChannelNameError::Empty);
    }
    if name.len() > max_len {
        return Err(ChannelNameError::TooLong(max_len));
    }
    if let Some(id) = name.strip_prefix(USER_CHANNEL_PREFIX)
        && allow_user_channel
    {
        return validate_user_id(id, max_len).map_err(ChannelNameError::UserId);
    }
    if name.bytes().all(is_name_char) { Ok(()) } else { Err(ChannelNameError::BadCharacter) }
}

/// Validates a user id (see [`UserIdError`]): non-empty, at most `max_len` bytes, no whitespace or
/// control characters. Identity providers use ids like `auth0|abc`, so the channel-name character
/// set is not required here.
pub fn validate_user_id(id: &str, max_len: usize) -> Result<(), UserIdError> {
    if id.is_empty() {
        return Err(UserIdError::Empty);
    }
    if id.len() > max_len {
        return Err(UserIdError::TooLong(max_len));
    }
    if id.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(UserIdError::BadCharacter);
    }
    Ok(())
}

/// The user id of a `#server-to-user-{id}` channel.
pub fn user_channel_id(name: &str) -> Option<&str> {
    name.strip_prefix(USER_CHANNEL_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_matched_by_anchored_longest_prefix() {
        let t = |n| ChannelType::of(n);
        assert_eq!(t("news"), ChannelType { kind: ChannelKind::Public, cache: false });
        assert_eq!(t("cache-x"), ChannelType { kind: ChannelKind::Public, cache: true });
        assert_eq!(t("my-cache-x"), ChannelType { kind: ChannelKind::Public, cache: false });
        assert_eq!(t("private-x"), ChannelType { kind: ChannelKind::Private, cache: false });
        assert_eq!(t("private-cache-x"), ChannelType { kind: ChannelKind::Private, cache: true });
        assert_eq!(t("private-encrypted-x"), ChannelType { kind: ChannelKind::Encrypted, cache: false });
        assert_eq!(t("private-encrypted-cache-x"), ChannelType { kind: ChannelKind::Encrypted, cache: true });
        assert_eq!(t("presence-x"), ChannelType { kind: ChannelKind::Presence, cache: false });
        assert_eq!(t("presence-cache-x"), ChannelType { kind: ChannelKind::Presence, cache: true });
        assert_eq!(t("#server-to-user-1"), ChannelType { kind: ChannelKind::User, cache: false });
        assert_eq!(t("x-private-y").kind, ChannelKind::Public);
    }

    #[test]
    fn client_events_only_on_private_and_presence() {
        assert!(ChannelType::of("private-a").allows_client_events());
        assert!(ChannelType::of("presence-cache-a").allows_client_events());
        assert!(!ChannelType::of("private-encrypted-a").allows_client_events());
        assert!(!ChannelType::of("public").allows_client_events());
        assert!(!ChannelType::of("cache-a").allows_client_events());
        assert!(!ChannelType::of("#server-to-user-1").allows_client_events());
    }

    #[test]
    fn names_are_validated() {
        assert_eq!(validate_name("a-Z_0=@,.;", 200, false), Ok(()));
        assert_eq!(validate_name("", 200, false), Err(ChannelNameError::Empty));
        assert_eq!(validate_name(&"a".repeat(201), 200, false), Err(ChannelNameError::TooLong(200)));
        assert_eq!(validate_name(&"a".repeat(200), 200, false), Ok(()));
        assert_eq!(validate_name("a b", 200, false), Err(ChannelNameError::BadCharacter));
        assert_eq!(validate_name("é", 200, false), Err(ChannelNameError::BadCharacter));
        assert_eq!(validate_name("#server-to-user-1", 200, false), Err(ChannelNameError::BadCharacter));
        assert_eq!(validate_name("#server-to-user-1", 200, true), Ok(()));
        assert_eq!(validate_name("#server-to-user-", 200, true), Err(ChannelNameError::UserId(UserIdError::Empty)));
        assert_eq!(validate_name("#other", 200, true), Err(ChannelNameError::BadCharacter));
        assert_eq!(validate_name("#server-to-user-auth0|abc", 200, true), Ok(()));
        assert_eq!(
            validate_name("#server-to-user-a b", 200, true),
            Err(ChannelNameError::UserId(UserIdError::BadCharacter))
        );
    }
}
