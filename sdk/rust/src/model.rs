//! The Spine model change message: `{"type":"create|update|destroy","class":"Page","id":"1","record":{...}}`.

use serde::{Deserialize, Serialize};

use crate::Error;

/// What happened to the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// A new record.
    Create,
    /// A changed record (the full record is sent).
    Update,
    /// A removed record.
    Destroy,
}

impl ChangeKind {
    /// `create`, `update` or `destroy`: also the event name [`crate::Client::publish_change`] uses.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Create => "create",
            ChangeKind::Update => "update",
            ChangeKind::Destroy => "destroy",
        }
    }
}

/// One change to one record, in the shape the Sinew Spine adapter applies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelChange {
    /// `create`, `update` or `destroy`.
    #[serde(rename = "type")]
    pub kind: ChangeKind,
    /// The Spine model's class name, e.g. `Page`.
    pub class: String,
    /// The record id, always a string on the wire.
    pub id: String,
    /// The record's attributes (omitted for a destroy without one).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub record: Option<serde_json::Value>,
}

impl ModelChange {
    fn with(kind: ChangeKind, class: &str, id: impl ToString, record: Option<serde_json::Value>) -> Self {
        ModelChange { kind, class: class.to_string(), id: id.to_string(), record }
    }

    /// A created record.
    pub fn create(class: &str, id: impl ToString, record: &impl Serialize) -> Result<Self, Error> {
        Ok(Self::with(ChangeKind::Create, class, id, Some(serde_json::to_value(record)?)))
    }

    /// An updated record (send the whole record: the adapter creates it when missing).
    pub fn update(class: &str, id: impl ToString, record: &impl Serialize) -> Result<Self, Error> {
        Ok(Self::with(ChangeKind::Update, class, id, Some(serde_json::to_value(record)?)))
    }

    /// A destroyed record.
    pub fn destroy(class: &str, id: impl ToString) -> Self {
        Self::with(ChangeKind::Destroy, class, id, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wire_shape() {
        let c = ModelChange::update("Page", 1, &json!({"title": "Hi"})).expect("json");
        assert_eq!(
            serde_json::to_value(&c).expect("json"),
            json!({"type":"update","class":"Page","id":"1","record":{"title":"Hi"}})
        );
        assert_eq!(
            serde_json::to_string(&ModelChange::destroy("Page", "7")).expect("json"),
            r#"{"type":"destroy","class":"Page","id":"7"}"#
        );
    }
}
