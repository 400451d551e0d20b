//! The REST client: publishing, channel queries, user termination.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::{Method, Url};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::auth::{self, ChannelAuth, UserAuth, is_encrypted_channel};
use crate::model::ModelChange;
use crate::sign::{signed_pairs, validate_channel, validate_event_name, validate_socket_id, validate_user_id};
use crate::webhook::{self, Webhook};
use crate::{Error, WebhookError};

/// Most channels one trigger may name.
pub const MAX_TRIGGER_CHANNELS: usize = 100;

/// Optional fields of a trigger.
#[derive(Debug, Clone, Default)]
pub struct TriggerOptions {
    /// The connection that caused the event; it does not receive it (pass the browser's
    /// `X-Pusher-Socket-ID` header here).
    pub socket_id: Option<String>,
    /// Attributes to report per channel, e.g. `user_count,subscription_count`.
    pub info: Option<String>,
}

/// One event of a batch.
#[derive(Debug, Clone, Serialize)]
pub struct BatchEvent {
    /// The channel.
    pub channel: String,
    /// The event name.
    pub name: String,
    /// The event data, already JSON text (see [`event_data`]).
    pub data: String,
    /// The connection to leave out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub socket_id: Option<String>,
    /// Attributes to report for the channel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub info: Option<String>,
}

#[derive(Serialize)]
struct EventBody<'a> {
    name: &'a str,
    data: String,
    channels: &'a [&'a str],
    #[serde(skip_serializing_if = "Option::is_none")]
    socket_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    info: Option<&'a str>,
}

#[derive(Deserialize)]
struct UsersReply {
    users: Vec<UserId>,
}

#[derive(Deserialize)]
struct UserId {
    id: String,
}

/// Event data as the official SDKs send it: a string stays as it is, anything else becomes its JSON text.
pub fn event_data(data: &(impl Serialize + ?Sized)) -> Result<String, Error> {
    let text = serde_json::to_string(data)?;
    if text.starts_with('"') {
        return Ok(serde_json::from_str::<String>(&text)?);
    }
    Ok(text)
}

/// Percent-encodes a path segment, keeping the characters channel names may contain.
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~=@,;".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A client for one app on one Sinew (or other Pusher Channels) server.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    app_id: String,
    key: String,
    secret: String,
    master_key: Option<[u8; 32]>,
}

impl Client {
    /// A client for `base_url` (`http://127.0.0.1:6001` or `https://sinew.example.com`) with a
    /// 10 second request timeout.
    pub fn new(base_url: &str, app_id: &str, key: &str, secret: &str) -> Result<Client, Error> {
        let base = Url::parse(base_url).map_err(|_| Error::InvalidBaseUrl(base_url.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() || base.query().is_some() {
            return Err(Error::InvalidBaseUrl(base_url.to_string()));
        }
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
        Ok(Client {
            http,
            base,
            app_id: app_id.to_string(),
            key: key.to_string(),
            secret: secret.to_string(),
            master_key: None,
        })
    }

    /// Sets the base64 encryption master key used for `private-encrypted-` channel authorization.
    pub fn with_master_key_base64(mut self, base64: &str) -> Result<Client, Error> {
        self.master_key = Some(auth::decode_master_key(base64)?);
        Ok(self)
    }

    /// Replaces the HTTP client (for a different timeout, proxy or connection pool).
    pub fn with_http_client(mut self, http: reqwest::Client) -> Client {
        self.http = http;
        self
    }

    /// The app key (what pusher-js is constructed with).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Publishes `event` on `channel`. `data` is sent as a string unchanged, anything else as JSON.
    pub async fn trigger(
        &self,
        channel: &str,
        event: &str,
        data: &(impl Serialize + ?Sized),
        options: &TriggerOptions,
    ) -> Result<Value, Error> {
        self.trigger_many(&[channel], event, data, options).await
    }

    /// Publishes `event` on up to 100 channels at once.
    pub async fn trigger_many(
        &self,
        channels: &[&str],
        event: &str,
        data: &(impl Serialize + ?Sized),
        options: &TriggerOptions,
    ) -> Result<Value, Error> {
        if channels.len() > MAX_TRIGGER_CHANNELS {
            return Err(Error::TooManyChannels(channels.len()));
        }
        for c in channels {
            validate_channel(c)?;
        }
        self.trigger_unchecked(channels, event, data, options).await
    }

    async fn trigger_unchecked(
        &self,
        channels: &[&str],
        event: &str,
        data: &(impl Serialize + ?Sized),
        options: &TriggerOptions,
    ) -> Result<Value, Error> {
        validate_event_name(event)?;
        if let Some(c) = channels.iter().find(|c| is_encrypted_channel(c)) {
            return Err(Error::EncryptedPublish((*c).to_string()));
        }
        if let Some(s) = &options.socket_id {
            validate_socket_id(s)?;
        }
        let body = EventBody {
            name: event,
            data: event_data(data)?,
            channels,
            socket_id: options.socket_id.as_deref(),
            info: options.info.as_deref(),
        };
        self.send(Method::POST, "/events", &[], Some(serde_json::to_vec(&body)?)).await
    }

    /// Publishes up to the server's batch limit (10 by default) events in one request.
    pub async fn trigger_batch(&self, events: &[BatchEvent]) -> Result<Value, Error> {
        for e in events {
            validate_channel(&e.channel)?;
            validate_event_name(&e.name)?;
            if is_encrypted_channel(&e.channel) {
                return Err(Error::EncryptedPublish(e.channel.clone()));
            }
            if let Some(s) = &e.socket_id {
                validate_socket_id(s)?;
            }
        }
        let body = serde_json::to_vec(&serde_json::json!({ "batch": events }))?;
        self.send(Method::POST, "/batch_events", &[], Some(body)).await
    }

    /// Publishes a Spine model change on `channel` with the change type as event name.
    /// `socket_id` (the browser's `X-Pusher-Socket-ID`) keeps it from echoing back to its sender.
    pub async fn publish_change(
        &self,
        channel: &str,
        change: &ModelChange,
        socket_id: Option<&str>,
    ) -> Result<Value, Error> {
        let options = TriggerOptions { socket_id: socket_id.map(str::to_string), info: None };
        self.trigger(channel, change.kind.as_str(), change, &options).await
    }

    /// Sends `event` to every connection signed in as `user_id`.
    pub async fn send_to_user(
        &self,
        user_id: &str,
        event: &str,
        data: &(impl Serialize + ?Sized),
    ) -> Result<Value, Error> {
        validate_user_id(user_id)?;
        let channel = format!("#server-to-user-{user_id}");
        self.trigger_unchecked(&[channel.as_str()], event, data, &TriggerOptions::default()).await
    }

    /// `GET /channels/{name}` with the given `info` attributes (e.g. `["user_count"]`).
    pub async fn channel_info(&self, channel: &str, info: &[&str]) -> Result<Value, Error> {
        validate_channel(channel)?;
        let joined = info.join(",");
        let params: Vec<(&str, &str)> = if info.is_empty() { vec![] } else { vec![("info", joined.as_str())] };
        self.send(Method::GET, &format!("/channels/{channel}"), &params, None).await
    }

    /// `GET /channels`, optionally only names starting with `prefix`.
    pub async fn channels(&self, prefix: Option<&str>, info: &[&str]) -> Result<Value, Error> {
        let joined = info.join(",");
        let mut params: Vec<(&str, &str)> = Vec::new();
        if let Some(p) = prefix {
            params.push(("filter_by_prefix", p));
        }
        if !info.is_empty() {
            params.push(("info", joined.as_str()));
        }
        self.send(Method::GET, "/channels", &params, None).await
    }

    /// The user ids present on a presence channel.
    pub async fn channel_users(&self, channel: &str) -> Result<Vec<String>, Error> {
        validate_channel(channel)?;
        let v = self.send(Method::GET, &format!("/channels/{channel}/users"), &[], None).await?;
        let reply: UsersReply = serde_json::from_value(v)?;
        Ok(reply.users.into_iter().map(|u| u.id).collect())
    }

    /// `GET /channels/{name}/history` (Sinew's extension): the channel's `epoch`, `first` and
    /// `last` offsets and up to `limit` kept `events` after offset `since`, each with its `offset`.
    pub async fn channel_history(&self, channel: &str, since: u64, limit: usize) -> Result<Value, Error> {
        validate_channel(channel)?;
        let (since, limit) = (since.to_string(), limit.to_string());
        let params = [("since", since.as_str()), ("limit", limit.as_str())];
        self.send(Method::GET, &format!("/channels/{channel}/history"), &params, None).await
    }

    /// Closes every connection signed in as `user_id`.
    pub async fn terminate_user_connections(&self, user_id: &str) -> Result<(), Error> {
        validate_user_id(user_id)?;
        let path = format!("/users/{}/terminate_connections", encode_segment(user_id));
        self.send(Method::POST, &path, &[], Some(b"{}".to_vec())).await.map(|_| ())
    }

    /// Signs a channel subscription (see [`auth::authorize_channel`]).
    pub fn authorize_channel<P: Serialize + ?Sized>(
        &self,
        socket_id: &str,
        channel: &str,
        presence: Option<&P>,
    ) -> Result<ChannelAuth, Error> {
        auth::authorize_channel(&self.key, &self.secret, self.master_key.as_ref(), socket_id, channel, presence)
    }

    /// Signs a user sign-in (see [`auth::authenticate_user`]).
    pub fn authenticate_user<U: Serialize + ?Sized>(&self, socket_id: &str, user_data: &U) -> Result<UserAuth, Error> {
        auth::authenticate_user(&self.key, &self.secret, socket_id, user_data)
    }

    /// Verifies a webhook from its `X-Pusher-Key` and `X-Pusher-Signature` headers and raw body.
    pub fn verify_webhook(
        &self,
        key_header: Option<&str>,
        signature_header: Option<&str>,
        body: &[u8],
    ) -> Result<Webhook, WebhookError> {
        webhook::verify(&self.key, &self.secret, key_header, signature_header, body)
    }

    /// Sends a signed request to `/apps/{app_id}{sub}` and returns the JSON reply.
    async fn send(
        &self,
        method: Method,
        sub: &str,
        params: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<Value, Error> {
        let path = format!("{}/apps/{}{}", self.base.path().trim_end_matches('/'), encode_segment(&self.app_id), sub);
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let body = body.unwrap_or_default();
        let pairs = signed_pairs(&self.key, &self.secret, method.as_str(), &path, params, &body, now)?;
        let mut url = self.base.clone();
        url.set_path(&path);
        url.query_pairs_mut().extend_pairs(pairs.iter());
        let mut req = self.http.request(method, url).header("x-pusher-library", "sinew-sdk-rust");
        if !body.is_empty() {
            req = req.header("content-type", "application/json").body(body);
        }
        let res = req.send().await?;
        let status = res.status();
        let text = res.text().await?;
        if !status.is_success() {
            return Err(Error::Status { status: status.as_u16(), body: text });
        }
        if text.trim().is_empty() {
            return Ok(Value::Object(Default::default()));
        }
        Ok(serde_json::from_str(&text)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn data_is_sent_like_the_node_sdk() {
        assert_eq!(event_data("plain \"text\"").expect("ok"), "plain \"text\"");
        assert_eq!(event_data(&json!({"a": 1})).expect("ok"), r#"{"a":1}"#);
        assert_eq!(event_data(&3).expect("ok"), "3");
    }

    #[test]
    fn base_url_must_be_http() {
        assert!(Client::new("ftp://x", "1", "k", "s").is_err());
        assert!(Client::new("nonsense", "1", "k", "s").is_err());
        assert!(Client::new("http://127.0.0.1:6001/", "1", "k", "s").is_ok());
        assert_eq!(encode_segment("a b/é"), "a%20b%2F%C3%A9");
    }
}
