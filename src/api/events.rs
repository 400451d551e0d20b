//! `POST /apps/{id}/events` and `POST /apps/{id}/batch_events`.

use super::ApiError;
use super::auth::Signed;
use crate::hub::{self, AppState, Hub, Origin, is_valid_socket_id};
use crate::protocol::channel::{self, ChannelKind, ChannelType};
use crate::state::Context;
use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// One event as the REST API receives it.
#[derive(Debug, Deserialize)]
struct EventBody {
    name: Option<String>,
    data: Option<Value>,
    channel: Option<String>,
    channels: Option<Vec<String>>,
    socket_id: Option<String>,
    info: Option<String>,
}

#[derive(Debug, Deserialize)]
struct BatchBody {
    batch: Vec<EventBody>,
}

/// An event that passed validation, ready to deliver.
struct Event {
    name: String,
    data: String,
    channels: Vec<String>,
    socket_id: Option<String>,
    info: Vec<InfoAttr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InfoAttr {
    UserCount,
    SubscriptionCount,
}

/// Takes `deliveries` (events x channels) from the app's REST event allowance of this second.
fn take_events(app: &AppState, deliveries: usize) -> Result<(), ApiError> {
    if app.take_rest_events(deliveries) {
        Ok(())
    } else {
        Err(ApiError::over_rate("event deliveries (events x channels)", app.config().max_backend_events_per_second))
    }
}

fn parse_body<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(format!("Invalid JSON body: {e}")))
}

fn validate(app: &AppState, body: EventBody, single_channel: bool) -> Result<Event, ApiError> {
    let cfg = app.config();
    let bad = |m: String| ApiError::BadRequest(m);
    let name = body.name.filter(|n| !n.is_empty()).ok_or_else(|| bad("Missing event name".into()))?;
    if name.len() > cfg.max_event_name_length {
        return Err(bad(format!("Event name is longer than {} characters", cfg.max_event_name_length)));
    }
    if name.starts_with("pusher:") || name.starts_with("pusher_internal:") {
        return Err(bad("Event names starting with pusher: or pusher_internal: are reserved".into()));
    }
    let data = match body.data {
        Some(Value::String(s)) => s,
        Some(Value::Null) | None => return Err(bad("Missing data".into())),
        Some(other) => other.to_string(),
    };
    if data.len() > cfg.max_event_data_bytes {
        return Err(ApiError::PayloadTooLarge(format!("Event data is larger than {} bytes", cfg.max_event_data_bytes)));
    }
    let mut channels = match (body.channel, body.channels) {
        (Some(c), None) => vec![c],
        (None, Some(cs)) if !single_channel => cs,
        (Some(_), Some(_)) => return Err(bad("Give either channel or channels, not both".into())),
        _ => return Err(bad("Missing channel".into())),
    };
    if channels.is_empty() {
        return Err(bad("channels is empty".into()));
    }
    if channels.len() > cfg.max_channels_per_event {
        return Err(bad(format!("More than {} channels in one event", cfg.max_channels_per_event)));
    }
    let mut seen = std::collections::HashSet::new();
    channels.retain(|c| seen.insert(c.clone()));
    for c in &channels {
        channel::validate_name(c, cfg.max_channel_name_length, true)
            .map_err(|e| bad(format!("Invalid channel name {c}: {e}")))?;
    }
    if channels.len() > 1 && channels.iter().any(|c| ChannelType::of(c).kind == ChannelKind::Encrypted) {
        return Err(bad("An event for an encrypted channel must name only that channel".into()));
    }
    let socket_id = body.socket_id.filter(|s| !s.is_empty());
    if let Some(s) = &socket_id
        && !is_valid_socket_id(s)
    {
        return Err(bad(format!("Invalid socket_id {s}")));
    }
    let info = parse_info(body.info.as_deref())?;
    Ok(Event { name, data, channels, socket_id, info })
}

fn parse_info(info: Option<&str>) -> Result<Vec<InfoAttr>, ApiError> {
    let mut out = Vec::new();
    for attr in info.unwrap_or("").split(',').map(|a| a.trim_matches(' ')).filter(|a| !a.is_empty()) {
        out.push(match attr {
            "user_count" => InfoAttr::UserCount,
            "subscription_count" => InfoAttr::SubscriptionCount,
            other => return Err(ApiError::BadRequest(format!("Unsupported info attribute {other}"))),
        });
    }
    Ok(out)
}

/// The longest a publish on a channel with history waits for Redis to position it.
const POSITIONED_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Delivers an event to its channels. In a cluster, what answers once each of its channels with
/// history has the event positioned in Redis (see [`wait_positioned`]).
fn publish(hub: &Hub, app: &AppState, ev: &Event) -> Option<tokio::sync::oneshot::Receiver<()>> {
    let event = hub::Event { name: &ev.name, data: &ev.data, channels: &ev.channels, except: ev.socket_id.as_deref() };
    hub.publish_event(app, event, Origin::Here)
}

/// Waits (at most [`POSITIONED_WAIT`]) until Redis positioned the events published, so that a
/// publisher waiting for each answer gets its order whichever nodes it calls.
async fn wait_positioned(waits: Vec<tokio::sync::oneshot::Receiver<()>>) {
    if !waits.is_empty() {
        let _ = tokio::time::timeout(POSITIONED_WAIT, futures_util::future::join_all(waits)).await;
    }
}

/// The `info` attributes per channel of a delivered event, when asked for.
async fn info(app: &AppState, ev: &Event) -> Result<Option<Map<String, Value>>, ApiError> {
    if ev.info.is_empty() {
        return Ok(None);
    }
    let mut channels = Map::new();
    for c in &ev.channels {
        // The event is already delivered: when the cluster cannot be asked, answer with what this
        // node knows rather than an error that would make the caller publish again.
        let summary = match app.channel_info(c).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cluster counts unavailable; answering with this node's");
                app.channels().summary(c)
            }
        };
        let mut attrs = Map::new();
        for a in &ev.info {
            match a {
                InfoAttr::SubscriptionCount => {
                    attrs.insert(
                        "subscription_count".into(),
                        json!(summary.as_ref().map_or(0, |s| s.subscription_count)),
                    );
                }
                InfoAttr::UserCount if ChannelType::of(c).kind == ChannelKind::Presence => {
                    attrs.insert("user_count".into(), json!(summary.as_ref().map_or(0, |s| s.user_count)));
                }
                InfoAttr::UserCount => {}
            }
        }
        channels.insert(c.clone(), Value::Object(attrs));
    }
    Ok(Some(channels))
}

/// `POST /apps/{app_id}/events`.
pub async fn trigger(State(ctx): State<Context>, Signed { app, body, .. }: Signed) -> Result<Json<Value>, ApiError> {
    let ev = validate(&app, parse_body(&body)?, false)?;
    take_events(&app, ev.channels.len())?;
    wait_positioned(publish(&ctx.hub, &app, &ev).into_iter().collect()).await;
    Ok(Json(match info(&app, &ev).await? {
        Some(channels) => json!({ "channels": channels }),
        None => json!({}),
    }))
}

/// `POST /apps/{app_id}/batch_events`: validates every event first, then delivers them in order.
pub async fn trigger_batch(
    State(ctx): State<Context>,
    Signed { app, body, .. }: Signed,
) -> Result<Json<Value>, ApiError> {
    let batch: BatchBody = parse_body(&body)?;
    if batch.batch.len() > app.config().max_batch_size {
        return Err(ApiError::BadRequest(format!("Batch has more than {} events", app.config().max_batch_size)));
    }
    let events = batch.batch.into_iter().map(|b| validate(&app, b, true)).collect::<Result<Vec<_>, _>>()?;
    take_events(&app, events.iter().map(|e| e.channels.len()).sum())?;
    wait_positioned(events.iter().filter_map(|ev| publish(&ctx.hub, &app, ev)).collect()).await;
    let mut infos = Vec::with_capacity(events.len());
    for ev in &events {
        infos.push(info(&app, ev).await?);
    }
    if infos.iter().all(Option::is_none) {
        return Ok(Json(json!({})));
    }
    let batch: Vec<Value> = infos
        .into_iter()
        .map(|i| i.and_then(|m| m.into_iter().next()).map(|(_, attrs)| attrs).unwrap_or_else(|| json!({})))
        .collect();
    Ok(Json(json!({ "batch": batch })))
}
