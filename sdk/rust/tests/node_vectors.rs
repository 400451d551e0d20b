//! The SDK's signatures against vectors produced by the official `pusher` Node SDK
//! (`tests/vectors/generate.mjs`; `./scripts/test` checks the file is current).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use sinew_sdk::{ChannelAuth, Client, UserAuth, WebhookError, sign};

fn vectors() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/node-sdk.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn client(v: &Value) -> Client {
    let app = &v["app"];
    Client::new(
        "http://127.0.0.1:6001",
        app["appId"].as_str().unwrap(),
        app["key"].as_str().unwrap(),
        app["secret"].as_str().unwrap(),
    )
    .unwrap()
    .with_master_key_base64(v["master_key_base64"].as_str().unwrap())
    .unwrap()
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap()
}

#[test]
fn authorize_channel_matches_node() {
    let v = vectors();
    let c = client(&v);
    let cases = v["authorize_channel"].as_array().unwrap();
    assert_eq!(cases.len(), 5);
    for case in cases {
        let presence = case.get("presence");
        let got = c.authorize_channel(s(&case["socket_id"]), s(&case["channel"]), presence).unwrap();
        let want: ChannelAuth = ChannelAuth {
            auth: s(&case["expected"]["auth"]).to_string(),
            channel_data: case["expected"].get("channel_data").map(|d| s(d).to_string()),
            shared_secret: case["expected"].get("shared_secret").map(|d| s(d).to_string()),
        };
        assert_eq!(got, want, "case {case}");
    }
    assert!(cases.iter().any(|c| c["expected"].get("shared_secret").is_some()), "an encrypted-channel vector");
}

#[test]
fn authorize_channel_with_the_typed_presence_data() {
    let v = vectors();
    let c = client(&v);
    let case = &v["authorize_channel"][1];
    let data = sinew_sdk::PresenceData {
        user_id: s(&case["presence"]["user_id"]).to_string(),
        user_info: Some(case["presence"]["user_info"].clone()),
    };
    let got = c.authorize_channel(s(&case["socket_id"]), s(&case["channel"]), Some(&data)).unwrap();
    assert_eq!(got.auth, s(&case["expected"]["auth"]));
    assert_eq!(got.channel_data.as_deref(), Some(s(&case["expected"]["channel_data"])));
}

#[test]
fn authenticate_user_matches_node() {
    let v = vectors();
    let c = client(&v);
    for case in v["authenticate_user"].as_array().unwrap() {
        let got = c.authenticate_user(s(&case["socket_id"]), &case["user_data"]).unwrap();
        let want = UserAuth {
            auth: s(&case["expected"]["auth"]).to_string(),
            user_data: s(&case["expected"]["user_data"]).to_string(),
        };
        assert_eq!(got, want, "case {case}");
    }
}

#[test]
fn webhook_signatures_match_node() {
    let v = vectors();
    let c = client(&v);
    let key = s(&v["app"]["key"]);
    for case in v["webhook"].as_array().unwrap() {
        let body = s(&case["body"]).as_bytes();
        let sig = s(&case["signature"]);
        assert_eq!(sign::hmac_hex(s(&v["app"]["secret"]), body), sig);
        let hook = c.verify_webhook(Some(key), Some(sig), body).unwrap();
        assert!(!hook.events.is_empty());
        assert_eq!(c.verify_webhook(Some("other-key"), Some(sig), body), Err(WebhookError::WrongKey));
        assert_eq!(c.verify_webhook(None, Some(sig), body), Err(WebhookError::MissingKey));
        assert_eq!(c.verify_webhook(Some(key), None, body), Err(WebhookError::MissingSignature));
        let mut tampered = body.to_vec();
        tampered[2] ^= 1;
        assert_eq!(c.verify_webhook(Some(key), Some(sig), &tampered), Err(WebhookError::BadSignature));
        assert_eq!(c.verify_webhook(Some(key), Some("00"), body), Err(WebhookError::BadSignature));
    }
}

#[test]
fn signed_rest_queries_match_node() {
    let v = vectors();
    let app = &v["app"];
    for case in v["signed_query"].as_array().unwrap() {
        let params: Vec<(&str, &str)> =
            case["params"].as_object().unwrap().iter().map(|(k, val)| (k.as_str(), s(val))).collect();
        let got = sign::signed_query(
            s(&app["key"]),
            s(&app["secret"]),
            s(&case["method"]),
            s(&case["path"]),
            &params,
            s(&case["body"]).as_bytes(),
            case["timestamp"].as_u64().unwrap(),
        )
        .unwrap();
        assert_eq!(got, s(&case["expected"]), "case {case}");
    }
}
