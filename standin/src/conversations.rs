//! The Conversations API of the Responses API (spec §6): `GET /v1/conversations/{id}`,
//! `GET /v1/conversations/{id}/items` (cursor pagination: `limit` 1-100 default 20, `order`
//! asc|desc default desc, `after`, `before`; `include` accepted and ignored) and
//! `GET /v1/conversations/{id}/items/{item_id}`. No `OpenAI-Beta` header is needed, and these
//! routes keep answering after the Assistants shutdown.
//!
//! Account format (`"conversations"` in the account file):
//!
//! ```json
//! {"conversation": {"id": "conv_...", "created_at": 1741900000, "metadata": {"team": "ops"}},
//!  "items": [
//!    {"type": "message", "id": "msg_...", "role": "user", "content": "What is ...?"},
//!    {"type": "function_call", "id": "fc_...", "call_id": "call_...", "name": "f", "arguments": "{}"},
//!    {"type": "function_call_output", "id": "fco_...", "call_id": "call_...", "output": "{...}"},
//!    {"type": "message", "id": "msg_...", "role": "assistant", "content": "It is ..."}]}
//! ```
//!
//! Conversations get `object: "conversation"` and `metadata: {}`; items `status: "completed"`
//! (messages, function calls and outputs), and a message's `"content": "text"` shorthand becomes
//! one `input_text` part (user, system, developer) or `output_text` part with `annotations: []`
//! (assistant). Items have no `created_at`, as in the real API: they are listed in file order.

use std::collections::HashMap;

use anyhow::{anyhow, bail};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::error::ApiError;
use super::pagination::{self, Collection, Item, ListQuery};

/// Every conversation of the account.
#[derive(Debug, Default)]
pub(crate) struct Conversations {
    by_id: HashMap<String, ConversationData>,
}

#[derive(Debug)]
struct ConversationData {
    conversation: Item,
    items: Collection,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConversationFile {
    conversation: Value,
    #[serde(default)]
    items: Vec<Value>,
}

impl Conversations {
    /// Reads the account file's `conversations` list.
    pub fn load(list: Vec<Value>) -> anyhow::Result<Conversations> {
        let mut by_id = HashMap::new();
        for (k, v) in list.into_iter().enumerate() {
            let at = format!("conversations[{k}]");
            let file: ConversationFile = serde_json::from_value(v).map_err(|e| anyhow!("{at}: {e}"))?;
            let data = conversation(file, &at)?;
            let id = data.conversation.id.clone();
            if by_id.insert(id.clone(), data).is_some() {
                bail!("{at}: duplicate conversation id {id:?}");
            }
        }
        Ok(Conversations { by_id })
    }

    /// `GET /conversations/{id}`.
    pub fn get(&self, id: &str) -> Result<String, ApiError> {
        Ok(self.find(id)?.conversation.json.clone())
    }

    /// `GET /conversations/{id}/items`.
    pub fn items(&self, id: &str, query: &[(String, String)]) -> Result<String, ApiError> {
        let c = self.find(id)?;
        let q = ListQuery::parse(query, pagination::STANDARD)?;
        pagination::page(&c.items, &q, |_| true)
    }

    /// `GET /conversations/{id}/items/{item_id}`.
    pub fn item(&self, id: &str, item_id: &str) -> Result<String, ApiError> {
        let c = self.find(id)?;
        c.items
            .get(item_id)
            .map(|i| i.json.clone())
            .ok_or_else(|| ApiError::not_found(format!("Item with id '{item_id}' not found.")))
    }

    fn find(&self, id: &str) -> Result<&ConversationData, ApiError> {
        if let Some(c) = self.by_id.get(id) {
            return Ok(c);
        }
        if !id.starts_with("conv_") {
            return Err(ApiError::bad_prefix("conversation_id", id, "conv"));
        }
        Err(ApiError::not_found(format!("Conversation with id '{id}' not found.")))
    }
}

fn conversation(file: ConversationFile, at: &str) -> anyhow::Result<ConversationData> {
    let Value::Object(given) = file.conversation else { bail!("{at}.conversation: expected a JSON object") };
    let id = given.get("id").and_then(Value::as_str).filter(|s| !s.is_empty()).ok_or_else(|| anyhow!("{at}.conversation: missing string \"id\""))?;
    let created_at = given
        .get("created_at")
        .and_then(Value::as_i64)
        .ok_or_else(|| anyhow!("{at}.conversation: missing integer \"created_at\" (Unix seconds)"))?;
    let mut o = Map::new();
    o.insert("id".into(), json!(id));
    o.insert("object".into(), json!("conversation"));
    for (k, v) in given.iter().filter(|(k, _)| k.as_str() != "id" && k.as_str() != "object") {
        o.insert(k.clone(), v.clone());
    }
    o.entry("metadata").or_insert(json!({}));
    let conversation = Item { id: id.to_string(), created_at, json: serde_json::to_string(&o)?, tag: None };
    let mut items = Vec::new();
    for (k, v) in file.items.into_iter().enumerate() {
        let at = format!("{at}.items[{k}]");
        let o = item(v, &at)?;
        let id = o["id"].as_str().unwrap_or_default().to_string();
        // Equal sort keys: the collection keeps file order.
        items.push(Item { id, created_at, json: serde_json::to_string(&o)?, tag: None });
    }
    let items = Collection::new(items).map_err(|e| anyhow!("{at}.items: {e}"))?;
    Ok(ConversationData { conversation, items })
}

fn item(v: Value, at: &str) -> anyhow::Result<Map<String, Value>> {
    let Value::Object(given) = v else { bail!("{at}: expected a JSON object") };
    let kind = given.get("type").and_then(Value::as_str).ok_or_else(|| anyhow!("{at}: missing string \"type\""))?.to_string();
    if given.get("id").and_then(Value::as_str).is_none_or(str::is_empty) {
        bail!("{at}: missing string \"id\"");
    }
    // `type` and `id` first, as the API writes them.
    let mut o = Map::new();
    o.insert("type".into(), json!(kind));
    o.insert("id".into(), given["id"].clone());
    for (k, v) in given.iter().filter(|(k, _)| k.as_str() != "type" && k.as_str() != "id") {
        o.insert(k.clone(), v.clone());
    }
    match kind.as_str() {
        "message" => {
            let role = o.get("role").and_then(Value::as_str).ok_or_else(|| anyhow!("{at}: a message needs a string \"role\""))?.to_string();
            let part = if role == "assistant" { "output_text" } else { "input_text" };
            if let Some(Value::String(text)) = o.get("content") {
                let mut p = json!({"type": part, "text": text});
                if part == "output_text" {
                    p["annotations"] = json!([]);
                }
                o.insert("content".into(), json!([p]));
            }
            o.entry("content").or_insert(json!([]));
            o.entry("status").or_insert(json!("completed"));
        }
        "function_call" | "function_call_output" => {
            if o.get("call_id").and_then(Value::as_str).is_none() {
                bail!("{at}: a {kind} item needs a string \"call_id\"");
            }
            o.entry("status").or_insert(json!("completed"));
        }
        _ => {}
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account() -> Conversations {
        Conversations::load(vec![json!({
            "conversation": {"id": "conv_1", "created_at": 5, "metadata": {"team": "ops"}},
            "items": [
                {"type": "message", "id": "msg_1", "role": "user", "content": "Hi?"},
                {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "f", "arguments": "{}"},
                {"type": "function_call_output", "id": "fco_1", "call_id": "call_1", "output": "ok"},
                {"type": "message", "id": "msg_2", "role": "assistant", "content": "Hello."}
            ]
        })])
        .unwrap()
    }

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn items_page_in_file_order_and_shorthands_are_filled() {
        let c = account();
        let conv: Value = serde_json::from_str(&c.get("conv_1").unwrap()).unwrap();
        assert_eq!(conv, json!({"id": "conv_1", "object": "conversation", "created_at": 5, "metadata": {"team": "ops"}}));
        let page: Value = serde_json::from_str(&c.items("conv_1", &q(&[("order", "asc"), ("limit", "2")])).unwrap()).unwrap();
        let ids: Vec<&str> = page["data"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
        assert_eq!((ids, page["has_more"].as_bool()), (vec!["msg_1", "fc_1"], Some(true)));
        assert_eq!(page["data"][0]["content"], json!([{"type": "input_text", "text": "Hi?"}]));
        let next: Value = serde_json::from_str(&c.items("conv_1", &q(&[("order", "asc"), ("after", "fc_1")])).unwrap()).unwrap();
        assert_eq!(next["data"][1]["content"], json!([{"type": "output_text", "text": "Hello.", "annotations": []}]));
        // Default order is desc.
        let desc: Value = serde_json::from_str(&c.items("conv_1", &[]).unwrap()).unwrap();
        assert_eq!(desc["data"][0]["id"], "msg_2");
    }

    #[test]
    fn unknown_and_malformed_ids() {
        let c = account();
        assert_eq!(c.get("conv_none").unwrap_err().status.as_u16(), 404);
        assert_eq!(c.get("thread_1").unwrap_err().status.as_u16(), 400);
        assert_eq!(c.item("conv_1", "msg_9").unwrap_err().status.as_u16(), 404);
        assert!(Conversations::load(vec![json!({"conversation": {"id": "conv_1", "created_at": 1}, "items": [{"type": "message", "id": "m"}]})]).is_err());
    }
}
