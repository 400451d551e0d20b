//! REST calls the server refused, reported to the debug console's feed: method, path, status and
//! the reason given to the caller. The query (which holds `auth_signature`) is never shown, nor
//! anything of the secret.

use crate::state::Context;
use axum::body::Body;
use axum::body::HttpBody as _;
use axum::http::{Method, Uri};
use axum::response::Response;
use serde_json::{Value, json};

/// Error bodies longer than this are not read for their reason.
const MAX_REASON_BODY: u64 = 16 * 1024;

/// Reports `res` (a 4xx or 5xx answer to `method` `uri`) to the console and returns it unchanged.
/// Called only while a console watches.
pub async fn report_refusal(ctx: &Context, (method, uri): (Method, Uri), res: Response) -> Response {
    let (parts, body) = res.into_parts();
    let small = body.size_hint().exact().is_some_and(|n| n <= MAX_REASON_BODY);
    let (reason, body) = if small {
        match axum::body::to_bytes(body, MAX_REASON_BODY as usize).await {
            Ok(bytes) => (reason_of(&bytes), Body::from(bytes)),
            Err(_) => (String::new(), Body::empty()),
        }
    } else {
        (String::new(), body)
    };
    let app_id = app_of(ctx, &uri);
    let status = parts.status.as_u16();
    ctx.debug.emit(&app_id, || {
        json!({"type": "rest_refused", "method": method.as_str(), "path": uri.path(), "status": status, "reason": reason})
    });
    Response::from_parts(parts, body)
}

/// The `error` of a JSON error body, or the body's text.
fn reason_of(bytes: &[u8]) -> String {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) if m.get("error").is_some_and(Value::is_string) => {
            m.get("error").and_then(Value::as_str).unwrap_or_default().to_string()
        }
        _ => crate::hub::preview(&String::from_utf8_lossy(bytes), 300),
    }
}

/// The app a request names: by the id in `/apps/{id}/…`, else by its `auth_key`.
fn app_of(ctx: &Context, uri: &Uri) -> String {
    if let Some(rest) = uri.path().strip_prefix("/apps/") {
        return rest.split('/').next().unwrap_or_default().to_string();
    }
    super::auth::query_param(uri, "auth_key")
        .and_then(|key| ctx.hub.app_by_key(&key))
        .map(|app| app.id().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn reason_is_the_error_or_the_text() {
        assert_eq!(super::reason_of(br#"{"error":"Invalid signature"}"#), "Invalid signature");
        assert_eq!(super::reason_of(b"length limit exceeded"), "length limit exceeded");
    }
}
