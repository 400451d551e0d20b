//! Tests of `frame` (kept apart so the code's file stays short).
use super::*;
use serde_json::{Value, json};

fn parse(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or(Value::Null)
}

#[test]
fn connection_established_is_double_encoded() {
    for (id, timeout) in [("1.2", 120), ("123456789.987654321", 0), ("4294967295.18446744073709551615", u64::MAX)] {
        let text = connection_established(id, timeout);
        let v = parse(&text);
        assert_eq!(v.as_object().map(|o| o.len()), Some(2));
        assert_eq!(v["event"], "pusher:connection_established");
        let inner = parse(v["data"].as_str().unwrap_or(""));
        assert_eq!(inner, json!({"socket_id": id, "activity_timeout": timeout}));
        // The direct path writes what the general one would.
        let parts = ["{\"socket_id\":", &json_str(id), ",\"activity_timeout\":", &timeout.to_string(), "}"];
        assert_eq!(text, envelope_string_data("pusher:connection_established", None, &parts));
    }
    let v = parse(&connection_established("a\"b", 1));
    assert_eq!(parse(v["data"].as_str().unwrap_or("")), json!({"socket_id":"a\"b","activity_timeout":1}));
}

#[test]
fn error_has_object_data() {
    assert_eq!(parse(&error(Some(4001), "x")), json!({"event":"pusher:error","data":{"code":4001,"message":"x"}}));
    assert_eq!(parse(&error(None, "y\"")), json!({"event":"pusher:error","data":{"code":null,"message":"y\""}}));
}

#[test]
fn channel_event_keeps_data_string() {
    let v = parse(&channel_event("e", "c", "{\"a\":\"\u{1}é\"}"));
    assert_eq!(v, json!({"event":"e","channel":"c","data":"{\"a\":\"\u{1}é\"}"}));
}

#[test]
fn presence_events() {
    let v = parse(&member_added("presence-x", "10", Some("{\"n\":1}")));
    assert_eq!(parse(v["data"].as_str().unwrap_or("")), json!({"user_id":10,"user_info":{"n":1}}));
    let v = parse(&member_removed("presence-x", "\"2\""));
    assert_eq!(parse(v["data"].as_str().unwrap_or("")), json!({"user_id":"2"}));
    let v = parse(&subscription_succeeded("presence-x", Some("{\"count\":1}")));
    assert_eq!(parse(v["data"].as_str().unwrap_or("")), json!({"presence":{"count":1}}));
}

#[test]
fn client_event_relays_raw_data_and_user_id() {
    let v = parse(&client_event("client-a", "presence-x", Some("{\"x\":[1, 2]}"), Some("42")));
    assert_eq!(v, json!({"event":"client-a","channel":"presence-x","data":{"x":[1,2]},"user_id":"42"}));
}

#[test]
fn signin_and_watchlist() {
    let v = parse(&signin_success("{\"id\":\"1\"}"));
    assert_eq!(parse(v["data"].as_str().unwrap_or("")), json!({"user_data":"{\"id\":\"1\"}"}));
    let v = parse(&watchlist_event("online", &["3", "4"]));
    assert_eq!(parse(v["data"].as_str().unwrap_or("")), json!({"events":[{"name":"online","user_ids":["3","4"]}]}));
}

#[test]
fn parses_client_messages() {
    let m = parse_client_message(r#"{"event":"pusher:subscribe","data":{"auth":"","channel":"news"}}"#);
    let m = m.unwrap_or_else(|e| panic!("{e}"));
    let d: SubscribeData = decode_data(&m.event, m.data).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(d.channel, "news");
    let m = parse_client_message(r#"{"event":"pusher:subscribe","data":"{\"channel\":\"a\"}"}"#);
    let m = m.unwrap_or_else(|e| panic!("{e}"));
    let d: SubscribeData = decode_data(&m.event, m.data).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(d.channel, "a");
    assert!(parse_client_message("nope").is_err());
    assert!(parse_client_message(r#"{"data":1}"#).is_err());
    let m = parse_client_message(r#"{"event":"pusher:subscribe"}"#).unwrap_or_else(|e| panic!("{e}"));
    assert!(decode_data::<SubscribeData>(&m.event, m.data).is_err());
}

#[test]
fn ascii_only_escaping() {
    let mut a = String::new();
    push_json_str_ascii(&mut a, "é😀\u{1}\"x");
    assert_eq!(a, "\"\\u00e9\\ud83d\\ude00\\u0001\\\"x\"");
    assert_eq!(serde_json::from_str::<String>(&a).unwrap_or_default(), "é😀\u{1}\"x");
    assert_eq!(json_str("é"), "\"é\"");
}

#[test]
fn escapes_after_a_plain_prefix() {
    assert_eq!(json_str("private-a\"b\\c\nd"), r#""private-a\"b\\c\nd""#);
    let mut a = String::new();
    push_json_str_ascii(&mut a, "ab\u{7f}é");
    assert_eq!(a, r#""ab\u007f\u00e9""#);
    assert_eq!(json_str("presence-room"), r#""presence-room""#);
    assert_eq!(json_str("é\n"), "\"é\\n\"");
}

#[test]
fn escaping_matches_serde_json() {
    let samples = [
        "",
        "plain",
        "{\"a\":\"b\",\"c\":[1,2]}",
        "\\\"\n\r\t\u{0}\u{1f}\u{7f}",
        "é😀 mixed \"quotes\" and \\ back\u{8}",
        "trailing\"",
    ];
    for s in samples {
        let j = json_str(s);
        assert_eq!(serde_json::from_str::<String>(&j).unwrap_or_default(), s);
        if !s.contains(['\u{8}', '\u{c}']) {
            // serde_json writes these two as `\b` and `\f`; otherwise the output is the same.
            assert_eq!(j, serde_json::to_string(s).unwrap_or_default(), "{s:?}");
        }
        let mut a = String::new();
        push_json_str_ascii(&mut a, s);
        assert!(a.is_ascii(), "{a}");
        assert_eq!(serde_json::from_str::<String>(&a).unwrap_or_default(), s);
        let v = parse(&channel_event("e", "c", s));
        assert_eq!(v["data"], s);
    }
}

#[test]
fn user_id_keys() {
    let r = |s: &str| serde_json::from_str::<Box<RawValue>>(s).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(user_id_key(&r("\"a\"")), Some("a".into()));
    assert_eq!(user_id_key(&r("10")), Some("10".into()));
    assert_eq!(user_id_key(&r("null")), None);
    assert_eq!(user_id_key(&r("{}")), None);
}

/// Escape-then-parse for any string: what Sinew writes into frames reads back as the same text.
mod round_trip {
    use super::*;
    use proptest::prelude::*;

    /// Any text, with control characters, quotes, backslashes and non-ASCII made common.
    fn text() -> impl Strategy<Value = String> {
        prop_oneof![any::<String>(), "[\\x00-\\x1f\"\\\\a\\x7fé€😀\u{2028}]{0,40}"]
    }

    proptest! {
        #[test]
        fn escaped_strings_parse_back(s in text()) {
            let j = json_str(&s);
            prop_assert_eq!(serde_json::from_str::<String>(&j).ok(), Some(s.clone()));
            let mut a = String::from("prefix");
            push_json_str_ascii(&mut a, &s);
            prop_assert!(a.is_ascii(), "{}", a);
            prop_assert_eq!(serde_json::from_str::<String>(&a["prefix".len()..]).ok(), Some(s));
        }

        #[test]
        fn frames_carry_any_text(event in text(), channel in text(), data in text(), id in text()) {
            let v = parse(&channel_event(&event, &channel, &data));
            prop_assert_eq!(v, json!({"event": event, "channel": channel, "data": data}));
            let v = parse(&connection_established(&id, 7));
            let inner = parse(v["data"].as_str().unwrap_or(""));
            prop_assert_eq!(inner, json!({"socket_id": id, "activity_timeout": 7}));
            let v = parse(&error(Some(4009), &data));
            prop_assert_eq!(&v["data"]["message"], &json!(data));
            let v = parse(&signin_success(&data));
            prop_assert_eq!(parse(v["data"].as_str().unwrap_or("")), json!({"user_data": data}));
            let v = parse(&subscription_error(&channel, &event, 403));
            prop_assert_eq!(&v["data"]["error"], &json!(event));
            let v = parse(&watchlist_event(&event, &[&id, &data]));
            let inner = parse(v["data"].as_str().unwrap_or(""));
            prop_assert_eq!(inner, json!({"events": [{"name": event, "user_ids": [id, data]}]}));
        }
    }
}
