//! Pusher protocol messages: parsing what clients send and encoding what the server sends.
//!
//! Encoders return the finished JSON text of one WebSocket message. Payloads that Pusher double-encodes
//! (`data` of `pusher:*` and `pusher_internal:*` events) are written as JSON strings.

use serde::Deserialize;
use serde_json::value::RawValue;

/// One message from a client: `{"event":..., "channel"?:..., "data"?:...}`.
#[derive(Debug, Deserialize)]
pub struct ClientMessage<'a> {
    /// Event name, e.g. `pusher:subscribe` or `client-typing`.
    #[serde(borrow)]
    pub event: std::borrow::Cow<'a, str>,
    /// Channel, for client events.
    #[serde(borrow, default)]
    pub channel: Option<std::borrow::Cow<'a, str>>,
    /// The raw `data` value, kept unparsed so client events relay it byte for byte.
    #[serde(borrow, default)]
    pub data: Option<&'a RawValue>,
}

/// Why a client message could not be understood.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The text is not JSON or lacks `event`.
    #[error("invalid JSON message: {0}")]
    Json(#[from] serde_json::Error),
    /// `data` is missing or has the wrong shape for the event.
    #[error("invalid data for {event}: {reason}")]
    Data {
        /// The event whose data was bad.
        event: String,
        /// What was wrong.
        reason: String,
    },
}

/// Parses one client message.
pub fn parse_client_message(text: &str) -> Result<ClientMessage<'_>, FrameError> {
    Ok(serde_json::from_str(text)?)
}

/// `data` of `pusher:subscribe`.
#[derive(Debug, Deserialize)]
pub struct SubscribeData {
    /// Channel to join.
    pub channel: String,
    /// `key:signature` for private, encrypted and presence channels.
    #[serde(default)]
    pub auth: Option<String>,
    /// Presence member data, the exact JSON string that was signed.
    #[serde(default)]
    pub channel_data: Option<String>,
}

/// `data` of `pusher:unsubscribe`.
#[derive(Debug, Deserialize)]
pub struct UnsubscribeData {
    /// Channel to leave.
    pub channel: String,
}

/// `data` of `pusher:signin`.
#[derive(Debug, Deserialize)]
pub struct SigninData {
    /// `key:signature` over `socket_id::user::user_data`.
    pub auth: String,
    /// The exact JSON string that was signed.
    pub user_data: String,
}

/// Decodes an event's `data` into `T`, accepting an object or a string holding the object's JSON.
pub fn decode_data<T: for<'de> Deserialize<'de>>(event: &str, data: Option<&RawValue>) -> Result<T, FrameError> {
    let bad = |reason: String| FrameError::Data { event: event.to_string(), reason };
    let raw = data.ok_or_else(|| bad("data is missing".into()))?;
    let text = raw.get();
    if text.starts_with('"') {
        let inner: String = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        serde_json::from_str(&inner).map_err(|e| bad(e.to_string()))
    } else {
        serde_json::from_str(text).map_err(|e| bad(e.to_string()))
    }
}

/// Presence `channel_data`: `{"user_id": string|number, "user_info"?: any}`.
#[derive(Debug, Deserialize)]
pub struct ChannelData<'a> {
    /// The member id as sent (string or number).
    #[serde(borrow, default)]
    pub user_id: Option<&'a RawValue>,
    /// Optional public info about the member.
    #[serde(borrow, default)]
    pub user_info: Option<&'a RawValue>,
}

/// Signed-in `user_data`: `{"id": string, "user_info"?: any, "watchlist"?: [ids]}`.
#[derive(Debug, Deserialize)]
pub struct UserData<'a> {
    /// The user id; must be a non-empty string.
    #[serde(default)]
    pub id: Option<serde_json::Value>,
    /// Info shared on presence channels joined without channel_data.
    #[serde(borrow, default)]
    pub user_info: Option<&'a RawValue>,
    /// Ids whose online status this user wants to follow.
    #[serde(default)]
    pub watchlist: Option<Vec<serde_json::Value>>,
}

/// The string form of a JSON user id (a string's contents, or a number's text); `None` otherwise.
pub fn user_id_key(raw: &RawValue) -> Option<String> {
    match serde_json::from_str::<serde_json::Value>(raw.get()).ok()? {
        serde_json::Value::String(s) => Some(s),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Appends `s` to `out` as a JSON string literal (non-ASCII characters kept as UTF-8).
pub fn push_json_str(out: &mut String, s: &str) {
    push_escaped(out, s, false);
}

/// Appends `s` as a JSON string literal using only ASCII (`\uXXXX` escapes), for transports whose
/// clients count characters and bytes alike (the HTTP fallback framing).
pub fn push_json_str_ascii(out: &mut String, s: &str) {
    push_escaped(out, s, true);
}

fn push_escaped(out: &mut String, s: &str, ascii_only: bool) {
    out.reserve(s.len() + 2);
    out.push('"');
    push_escaped_body(out, s, ascii_only);
    out.push('"');
}

/// Appends the escaped contents of `s` (without quotes): runs of plain bytes are copied whole.
fn push_escaped_body(out: &mut String, s: &str, ascii_only: bool) {
    let bytes = s.as_bytes();
    let mut run = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b >= 0x20 && b != b'"' && b != b'\\' && !(ascii_only && b > b'~') {
            i += 1;
            continue;
        }
        out.push_str(&s[run..i]);
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            _ => {
                // A control byte, or (ASCII only) DEL or the first byte of a multi-byte character:
                // runs stop only there or at ASCII bytes, so `i` is on a character boundary.
                let c = s.get(i..).and_then(|t| t.chars().next()).unwrap_or('\u{fffd}');
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    push_unicode_escape(out, *u);
                }
                i += c.len_utf8() - 1;
            }
        }
        i += 1;
        run = i;
    }
    out.push_str(&s[run..]);
}

/// Appends `\uXXXX` (lower-case hex).
fn push_unicode_escape(out: &mut String, unit: u16) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push_str("\\u");
    for shift in [12, 8, 4, 0] {
        out.push(char::from(HEX[usize::from((unit >> shift) & 0xf)]));
    }
}

/// `s` as a JSON string literal.
pub fn json_str(s: &str) -> String {
    let mut out = String::new();
    push_json_str(&mut out, s);
    out
}

/// Builds `{"event":E[,"channel":C][,"data":D][,"user_id":U]}`; `data` is inserted as raw JSON.
fn envelope(event: &str, channel: Option<&str>, data_json: Option<&str>, user_id: Option<&str>) -> String {
    let mut out = envelope_head(event, channel, data_json.map_or(0, str::len));
    if let Some(d) = data_json {
        out.push_str(",\"data\":");
        out.push_str(d);
    }
    if let Some(u) = user_id {
        out.push_str(",\"user_id\":");
        push_json_str(&mut out, u);
    }
    out.push('}');
    out
}

/// Builds `{"event":E[,"channel":C],"data":"..."}` where the data string is the concatenation of
/// `parts`, escaped straight into the frame (no intermediate string).
fn envelope_string_data(event: &str, channel: Option<&str>, parts: &[&str]) -> String {
    let data_len: usize = parts.iter().map(|p| p.len()).sum();
    let mut out = envelope_head(event, channel, data_len + data_len / 4);
    out.push_str(",\"data\":\"");
    for part in parts {
        push_escaped_body(&mut out, part, false);
    }
    out.push_str("\"}");
    out
}

/// `{"event":E[,"channel":C]` in a string with room for `rest` more bytes.
fn envelope_head(event: &str, channel: Option<&str>, rest: usize) -> String {
    let mut out = String::with_capacity(40 + event.len() + channel.map_or(0, str::len) + rest);
    out.push_str("{\"event\":");
    push_json_str(&mut out, event);
    if let Some(c) = channel {
        out.push_str(",\"channel\":");
        push_json_str(&mut out, c);
    }
    out
}

/// `pusher:connection_established` with the double-encoded socket id and activity timeout.
pub fn connection_established(socket_id: &str, activity_timeout_secs: u64) -> String {
    if socket_id.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        // Sinew's own socket ids: digits and a dot, nothing to escape, so the frame is written
        // in one buffer (this runs once for every new connection).
        const HEAD: &str = "{\"event\":\"pusher:connection_established\",\"data\":\"{\\\"socket_id\\\":\\\"";
        const MID: &str = "\\\",\\\"activity_timeout\\\":";
        let mut out = String::with_capacity(HEAD.len() + socket_id.len() + MID.len() + 24);
        out.push_str(HEAD);
        out.push_str(socket_id);
        out.push_str(MID);
        out.push_str(itoa::Buffer::new().format(activity_timeout_secs));
        out.push_str("}\"}");
        return out;
    }
    let id = json_str(socket_id);
    let timeout = activity_timeout_secs.to_string();
    let parts = ["{\"socket_id\":", &id, ",\"activity_timeout\":", &timeout, "}"];
    envelope_string_data("pusher:connection_established", None, &parts)
}

/// `pusher:error` with an object `data`; `code` is `null` for subscription-level errors.
pub fn error(code: Option<u16>, message: &str) -> String {
    let code = code.map_or_else(|| "null".to_string(), |c| c.to_string());
    let data = format!("{{\"code\":{},\"message\":{}}}", code, json_str(message));
    envelope("pusher:error", None, Some(&data), None)
}

/// `pusher:ping`.
pub fn ping() -> String {
    envelope("pusher:ping", None, Some("\"{}\""), None)
}

/// `pusher:pong`.
pub fn pong() -> String {
    envelope("pusher:pong", None, Some("\"{}\""), None)
}

/// `pusher_internal:subscription_succeeded`; `presence` is the JSON of `{"ids","hash","count"}`.
pub fn subscription_succeeded(channel: &str, presence: Option<&str>) -> String {
    const EVENT: &str = "pusher_internal:subscription_succeeded";
    match presence {
        Some(p) => envelope_string_data(EVENT, Some(channel), &["{\"presence\":", p, "}"]),
        None => envelope(EVENT, Some(channel), Some("\"{}\""), None),
    }
}

/// `pusher:subscription_error` with `{"type":"AuthError","error":..,"status":..}`.
pub fn subscription_error(channel: &str, message: &str, status: u16) -> String {
    let data = format!("{{\"type\":\"AuthError\",\"error\":{},\"status\":{}}}", json_str(message), status);
    envelope("pusher:subscription_error", Some(channel), Some(&data), None)
}

/// `pusher_internal:member_added`; `user_id_json` and `user_info_json` are raw JSON values.
pub fn member_added(channel: &str, user_id_json: &str, user_info_json: Option<&str>) -> String {
    const EVENT: &str = "pusher_internal:member_added";
    match user_info_json {
        Some(info) => {
            envelope_string_data(EVENT, Some(channel), &["{\"user_id\":", user_id_json, ",\"user_info\":", info, "}"])
        }
        None => envelope_string_data(EVENT, Some(channel), &["{\"user_id\":", user_id_json, "}"]),
    }
}

/// `pusher_internal:member_removed`.
pub fn member_removed(channel: &str, user_id_json: &str) -> String {
    envelope_string_data("pusher_internal:member_removed", Some(channel), &["{\"user_id\":", user_id_json, "}"])
}

/// A channel event from the REST API: `data` is the publisher's string, delivered unchanged.
pub fn channel_event(event: &str, channel: &str, data: &str) -> String {
    envelope_string_data(event, Some(channel), &[data])
}

/// A relayed client event; `data_json` is the client's raw `data` value.
pub fn client_event(event: &str, channel: &str, data_json: Option<&str>, user_id: Option<&str>) -> String {
    envelope(event, Some(channel), data_json, user_id)
}

/// A new epoch of a channel's history: eight random characters of `[0-9a-z]`.
pub fn new_epoch() -> String {
    (0..8).map(|_| char::from_digit(rand::random_range(0..36u32), 36).unwrap_or('0')).collect()
}

/// `text` (a channel event's JSON object) with its position in the channel's history as one more
/// top-level member, `"sinew_position":{"epoch":E,"offset":N}`, which clients that do not know it
/// ignore. `epoch` is made by [`new_epoch`] (nothing to escape). In a cluster, the history script
/// in Redis (`adapter/history.rs`) writes the same member.
pub fn with_position(text: &str, epoch: &str, offset: u64) -> String {
    let body = text.strip_suffix('}').unwrap_or(text);
    let mut digits = itoa::Buffer::new();
    let offset = digits.format(offset);
    let mut out = String::with_capacity(body.len() + 40 + epoch.len() + offset.len());
    out.push_str(body);
    out.push_str(",\"sinew_position\":{\"epoch\":\"");
    out.push_str(epoch);
    out.push_str("\",\"offset\":");
    out.push_str(offset);
    out.push_str("}}");
    out
}

/// `sinew:resumed` on `channel`: every event after the client's position was sent again; the
/// channel's position is now `offset` of `epoch`.
pub fn resumed(channel: &str, epoch: &str, offset: u64, replayed: usize) -> String {
    let data = format!("{{\"epoch\":{},\"offset\":{offset},\"replayed\":{replayed}}}", json_str(epoch));
    envelope("sinew:resumed", Some(channel), Some(&data), None)
}

/// `sinew:resume_failed` on `channel`, with why, and the channel's current position when it has one.
pub fn resume_failed(channel: &str, reason: &str, now: Option<(&str, u64)>) -> String {
    let data = match now {
        Some((epoch, offset)) => {
            format!("{{\"reason\":{},\"epoch\":{},\"offset\":{offset}}}", json_str(reason), json_str(epoch))
        }
        None => format!("{{\"reason\":{}}}", json_str(reason)),
    };
    envelope("sinew:resume_failed", Some(channel), Some(&data), None)
}

/// `pusher:cache_miss` for an empty cache channel.
pub fn cache_miss(channel: &str) -> String {
    envelope("pusher:cache_miss", Some(channel), None, None)
}

/// `pusher:signin_success` carrying the exact signed `user_data` string.
pub fn signin_success(user_data: &str) -> String {
    let user_data = json_str(user_data);
    envelope_string_data("pusher:signin_success", None, &["{\"user_data\":", &user_data, "}"])
}

/// `pusher_internal:watchlist_events` with one `online` or `offline` entry.
pub fn watchlist_event(name: &str, user_ids: &[&str]) -> String {
    let ids = user_ids.iter().map(|u| json_str(u)).collect::<Vec<_>>().join(",");
    let name = json_str(name);
    let parts = ["{\"events\":[{\"name\":", &name, ",\"user_ids\":[", &ids, "]}]}"];
    envelope_string_data("pusher_internal:watchlist_events", None, &parts)
}

/// `pusher_internal:subscription_count`.
pub fn subscription_count(channel: &str, count: usize) -> String {
    let count = count.to_string();
    envelope_string_data(
        "pusher_internal:subscription_count",
        Some(channel),
        &["{\"subscription_count\":", &count, "}"],
    )
}

#[cfg(test)]
#[path = "frame_tests.rs"]
mod tests;
