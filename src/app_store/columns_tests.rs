use super::*;

fn row(pairs: &[(&str, Option<&str>)]) -> Row {
    pairs.iter().map(|(k, v)| (k.to_string(), v.map(str::to_string))).collect()
}

fn soketi(extra: &[(&str, Option<&str>)]) -> Row {
    let mut r = row(&[
        ("id", Some("app-1")),
        ("key", Some("key-1")),
        ("secret", Some("s3cret")),
        ("max_connections", Some("-1")),
        ("enable_client_messages", Some("1")),
        ("enabled", Some("1")),
        ("max_backend_events_per_sec", Some("-1")),
        ("max_client_events_per_sec", Some("-1")),
        ("max_read_req_per_sec", Some("-1")),
        ("webhooks", Some("[]")),
    ]);
    r.extend(row(extra));
    r
}

#[test]
fn a_soketi_row_with_minus_one_is_unlimited() {
    let (app, warnings) = app_of(&soketi(&[])).unwrap();
    assert_eq!((app.id.as_str(), app.key.as_str(), app.secret.as_str()), ("app-1", "key-1", "s3cret"));
    assert!(app.client_events && app.enabled);
    assert_eq!(app.max_connections, 0);
    assert_eq!(app.max_backend_events_per_second, 0);
    assert_eq!(app.max_read_requests_per_second, 0);
    assert_eq!(app.max_client_events_per_second, u32::MAX);
    assert!(warnings.is_empty());
}

#[test]
fn limits_booleans_of_either_database_and_optional_columns() {
    let r = soketi(&[
        ("max_connections", Some("200")),
        ("enable_client_messages", Some("false")),
        ("enabled", Some("f")),
        ("max_backend_events_per_sec", Some("50")),
        ("max_client_events_per_sec", Some("5")),
        ("max_read_req_per_sec", Some("7")),
        ("max_presence_members_per_channel", Some("20")),
        ("max_presence_member_size_in_kb", Some("2")),
        ("max_event_payload_in_kb", Some("100")),
        ("max_event_batch_size", None),
    ]);
    let (app, _) = app_of(&r).unwrap();
    assert_eq!(app.max_connections, 200);
    assert!(!app.client_events && !app.enabled);
    assert_eq!((app.max_backend_events_per_second, app.max_client_events_per_second), (50, 5));
    assert_eq!(app.max_read_requests_per_second, 7);
    assert_eq!((app.max_presence_members, app.max_presence_user_info_bytes), (20, 2048));
    assert_eq!(app.max_event_data_bytes, 100 * 1024);
    assert_eq!(app.max_batch_size, AppConfig::default().max_batch_size, "NULL keeps the default");
}

#[test]
fn soketi_webhooks_map_and_what_cannot_be_honoured_is_reported() {
    let hooks = r#"[{"url":"https://h.example/hook","event_types":["channel_occupied"],"filter":{"channel_name_starts_with":"private-","channel_name_ends_with":"-x"},"headers":{"X-A":"1"}},{"lambda_function":"f"}]"#;
    let (app, warnings) = app_of(&soketi(&[("webhooks", Some(hooks))])).unwrap();
    assert_eq!(app.webhooks.len(), 1);
    assert_eq!(app.webhooks[0].url, "https://h.example/hook");
    assert_eq!(app.webhooks[0].event_types, vec!["channel_occupied"]);
    assert_eq!(app.webhooks[0].channel_prefix.as_deref(), Some("private-"));
    assert_eq!(warnings.len(), 3, "{warnings:?}");
}

#[test]
fn sinew_settings_lay_over_the_columns_and_cannot_touch_credentials() {
    let r =
        soketi(&[("sinew_settings", Some(r#"{"subscription_count":true,"allowed_origins":["https://a.example"]}"#))]);
    let (app, _) = app_of(&r).unwrap();
    assert!(app.subscription_count);
    assert_eq!(app.allowed_origins, vec!["https://a.example"]);
    let e = app_of(&soketi(&[("sinew_settings", Some(r#"{"secret":"x"}"#))])).unwrap_err();
    assert_eq!(e.column, "sinew_settings");
    let e = app_of(&soketi(&[("sinew_settings", Some(r#"{"no_such_key":1}"#))])).unwrap_err();
    assert!(e.reason.contains("no_such_key"), "{e}");
}

#[test]
fn bad_values_name_the_app_and_column() {
    let e = app_of(&soketi(&[("max_connections", Some("lots"))])).unwrap_err();
    assert_eq!((e.id.as_str(), e.column.as_str()), ("app-1", "max_connections"));
    let e = app_of(&soketi(&[("enabled", Some("maybe"))])).unwrap_err();
    assert_eq!(e.column, "enabled");
    let e = app_of(&soketi(&[("webhooks", Some("{"))])).unwrap_err();
    assert_eq!(e.column, "webhooks");
    let e = app_of(&soketi(&[("max_event_batch_size", Some("0"))])).unwrap_err();
    assert_eq!(e.column, "max_event_batch_size");
}
