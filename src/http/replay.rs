//! Recorded HTTP exchanges: `--record DIR` writes one JSON file per exchange, `--replay DIR`
//! answers from them with no network and no key.
//!
//! A fixture file holds `{"request": {method, service, path, body}, "response": {status,
//! headers, body | body_text | body_base64}}`. Request headers are never stored (that is where
//! keys travel), response headers are kept from an allow-list, and the API key is scrubbed from
//! every stored body. Embedding answers are also indexed per input text, so a replay answers
//! any batch made of recorded inputs, whatever order the batches were formed in.

use super::transport::{ApiRequest, ApiResponse, Method, Service, TransportError};
use crate::record::canonical_json;
use base64::Engine;
use bytes::Bytes;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use sha2::Digest;

/// Response headers worth keeping in a fixture: none of them identifies an account.
const KEPT_HEADERS: &[&str] = &["content-type", "retry-after", "retry-after-ms", "x-should-retry"];

pub struct Recorder {
    dir: PathBuf,
    /// How often each request was recorded in this run (a repeat gets `.r2`, `.r3`, which sort after the first).
    repeats: Mutex<HashMap<String, u32>>,
}

impl Recorder {
    /// Refuses a directory that already holds fixtures, so two recordings never mix.
    pub fn create(dir: &Path) -> Result<Recorder, String> {
        if dir.exists() {
            let has_files = std::fs::read_dir(dir)
                .map_err(|e| format!("--record {}: {e}", dir.display()))?
                .next()
                .is_some();
            if has_files {
                return Err(format!(
                    "--record {}: the directory is not empty; remove it or pick a new one (recordings are never mixed)",
                    dir.display()
                ));
            }
        }
        std::fs::create_dir_all(dir).map_err(|e| format!("--record {}: {e}", dir.display()))?;
        Ok(Recorder { dir: dir.to_path_buf(), repeats: Mutex::new(HashMap::new()) })
    }

    pub fn record(&self, req: &ApiRequest, resp: &ApiResponse, secret: &str) -> Result<(), TransportError> {
        let slug: String = req
            .path
            .split('?')
            .next()
            .unwrap_or_default()
            .trim_matches('/')
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
            .take(80)
            .collect();
        let method = match req.method {
            Method::Get => "GET",
            Method::Post => "POST",
        };
        // Named by content, not arrival order: re-recording the same account gives the same
        // file names, so a fixture diff in review shows only what really changed.
        let (m, svc, p, b) = key_of(req);
        let digest = sha2::Sha256::digest(format!("{m:?} {svc:?} {p} {b}").as_bytes());
        let id = hex::encode(&digest[..5]);
        let n = {
            let mut repeats = self.repeats.lock().unwrap_or_else(|e| e.into_inner());
            let n = repeats.entry(id.clone()).or_insert(0);
            *n += 1;
            *n
        };
        let suffix = if n > 1 { format!(".r{n}") } else { String::new() };
        let path = self.dir.join(format!("{slug}-{method}-{id}{suffix}.json"));
        let headers: serde_json::Map<String, Value> = resp
            .headers
            .iter()
            .filter(|(k, _)| KEPT_HEADERS.contains(&k.as_str()) || k.starts_with("x-ratelimit-"))
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        let mut response = json!({"status": resp.status, "headers": headers});
        match serde_json::from_slice::<Value>(&resp.body) {
            Ok(v) if !resp.body.is_empty() => response["body"] = v,
            _ => match std::str::from_utf8(&resp.body) {
                Ok(text) => response["body_text"] = Value::String(text.to_string()),
                Err(_) => {
                    response["body_base64"] =
                        Value::String(base64::engine::general_purpose::STANDARD.encode(&resp.body))
                }
            },
        }
        let exchange = json!({"request": req, "response": response});
        let mut text = serde_json::to_string_pretty(&exchange).map_err(|e| TransportError::Record {
            request: req.describe(),
            message: e.to_string(),
        })?;
        if !secret.is_empty() {
            text = text.replace(secret, "<redacted>");
        }
        text.push('\n');
        std::fs::write(&path, text).map_err(|e| TransportError::Record {
            request: req.describe(),
            message: format!("{}: {e}", path.display()),
        })
    }
}

type RequestKey = (Method, Service, String, String);

fn key_of(req: &ApiRequest) -> RequestKey {
    (req.method, req.service, req.path.clone(), req.body.as_ref().map(canonical_json).unwrap_or_default())
}

/// Recorded exchanges, answering requests in replay mode.
pub struct FixtureStore {
    dir: PathBuf,
    exchanges: HashMap<RequestKey, Vec<ApiResponse>>,
    served: Mutex<HashMap<RequestKey, usize>>,
    /// (model, dimensions, input) -> embedding, from every recorded embeddings answer.
    embeddings: HashMap<(String, Option<u64>, String), Vec<f32>>,
}

impl FixtureStore {
    pub fn load(dir: &Path) -> Result<FixtureStore, String> {
        let entries = std::fs::read_dir(dir).map_err(|e| {
            format!("--replay {}: {e}; pass a directory written by `engram migrate --record DIR`", dir.display())
        })?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(format!("--replay {}: no recorded exchanges (*.json) in it", dir.display()));
        }
        let mut store = FixtureStore {
            dir: dir.to_path_buf(),
            exchanges: HashMap::new(),
            served: Mutex::new(HashMap::new()),
            embeddings: HashMap::new(),
        };
        for file in files {
            let text = std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            let v: Value = serde_json::from_str(&text).map_err(|e| format!("{}: not a fixture: {e}", file.display()))?;
            let req: ApiRequest = serde_json::from_value(v["request"].clone())
                .map_err(|e| format!("{}: bad request part: {e}", file.display()))?;
            let resp = parse_response(&v["response"]).map_err(|e| format!("{}: {e}", file.display()))?;
            if req.method == Method::Post && req.path == "/embeddings" && resp.is_success() {
                store.index_embeddings(&req, &resp);
            }
            store.exchanges.entry(key_of(&req)).or_default().push(resp);
        }
        Ok(store)
    }

    fn index_embeddings(&mut self, req: &ApiRequest, resp: &ApiResponse) {
        let Some(body) = &req.body else { return };
        let model = body["model"].as_str().unwrap_or_default().to_string();
        let dims = body["dimensions"].as_u64();
        let inputs: Vec<String> = match &body["input"] {
            Value::String(s) => vec![s.clone()],
            Value::Array(a) => a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect(),
            _ => return,
        };
        let Ok(parsed) = serde_json::from_slice::<Value>(&resp.body) else { return };
        let Some(data) = parsed["data"].as_array() else { return };
        for item in data {
            let (Some(i), Some(vec)) = (item["index"].as_u64(), decode_embedding(&item["embedding"])) else {
                continue;
            };
            if let Some(input) = inputs.get(i as usize) {
                self.embeddings.insert((model.clone(), dims, input.clone()), vec);
            }
        }
    }

    /// The recorded embedding of `input` (model and `dimensions` as requested).
    pub fn recorded_embedding(&self, model: &str, dims: Option<u64>, input: &str) -> Option<&[f32]> {
        self.embeddings.get(&(model.to_string(), dims, input.to_string())).map(Vec::as_slice)
    }

    /// Every recorded embedding: (model, requested dimensions, input, vector).
    pub fn recorded_embeddings(&self) -> impl Iterator<Item = (&str, Option<u64>, &str, &[f32])> {
        self.embeddings.iter().map(|((m, d, i), v)| (m.as_str(), *d, i.as_str(), v.as_slice()))
    }

    pub fn answer(&self, req: &ApiRequest) -> Result<ApiResponse, TransportError> {
        let key = key_of(req);
        if let Some(responses) = self.exchanges.get(&key) {
            let mut served = self.served.lock().unwrap_or_else(|e| e.into_inner());
            let n = served.entry(key).or_insert(0);
            // Repeated identical requests get the recorded answers in order, then the last again.
            let resp = responses[(*n).min(responses.len() - 1)].clone();
            *n += 1;
            return Ok(resp);
        }
        if req.method == Method::Post && req.path == "/embeddings"
            && let Some(resp) = self.compose_embeddings(req)
        {
            return Ok(resp);
        }
        Err(TransportError::ReplayMiss(self.miss_message(req)))
    }

    fn compose_embeddings(&self, req: &ApiRequest) -> Option<ApiResponse> {
        let body = req.body.as_ref()?;
        let model = body["model"].as_str()?.to_string();
        let dims = body["dimensions"].as_u64();
        let inputs = body["input"].as_array()?;
        let base64 = body["encoding_format"].as_str() == Some("base64");
        let mut data = Vec::with_capacity(inputs.len());
        for (i, input) in inputs.iter().enumerate() {
            let vec = self.embeddings.get(&(model.clone(), dims, input.as_str()?.to_string()))?;
            let embedding = if base64 {
                let bytes: Vec<u8> = vec.iter().flat_map(|f| f.to_le_bytes()).collect();
                Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(vec)
            };
            data.push(json!({"object": "embedding", "index": i, "embedding": embedding}));
        }
        let body = json!({"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": 0, "total_tokens": 0}});
        Some(ApiResponse {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: Bytes::from(body.to_string()),
        })
    }

    fn miss_message(&self, req: &ApiRequest) -> String {
        let wanted = req.describe();
        let closest = self
            .exchanges
            .keys()
            .filter(|k| k.0 == req.method && k.1 == req.service)
            .map(|k| {
                let text = format!("{} {}", k.2, k.3);
                let score = strsim::normalized_levenshtein(&format!("{} {}", req.path, key_of(req).3), &text);
                (score, k)
            })
            .max_by(|a, b| a.0.total_cmp(&b.0));
        let mut msg = format!("no recorded answer for {wanted} in {}", self.dir.display());
        if let Some((_, k)) = closest {
            let recorded = ApiRequest {
                method: k.0,
                service: k.1,
                path: k.2.clone(),
                body: serde_json::from_str(&k.3).ok(),
            };
            msg.push_str(&format!("\n  closest recorded: {}", recorded.describe()));
            msg.push_str(&format!("\n  differs in: {}", describe_difference(&recorded, req)));
        }
        msg.push_str("\n  hint: re-record the fixtures with --record against a server that has this data");
        msg
    }
}

fn parse_response(v: &Value) -> Result<ApiResponse, String> {
    let status = v["status"].as_u64().ok_or("response without status")? as u16;
    let headers = v["headers"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
        .unwrap_or_default();
    let body = if let Some(b) = v.get("body") {
        Bytes::from(b.to_string())
    } else if let Some(t) = v["body_text"].as_str() {
        Bytes::from(t.to_string())
    } else if let Some(b) = v["body_base64"].as_str() {
        Bytes::from(base64::engine::general_purpose::STANDARD.decode(b).map_err(|e| e.to_string())?)
    } else {
        Bytes::new()
    };
    Ok(ApiResponse { status, headers, body })
}

/// Decodes an embedding given as a float array or as base64 little-endian f32.
pub fn decode_embedding(v: &Value) -> Option<Vec<f32>> {
    match v {
        Value::Array(a) => a.iter().map(|x| x.as_f64().map(|f| f as f32)).collect(),
        Value::String(s) => super::decode_base64_f32(s),
        _ => None,
    }
}

/// Names the part of `wanted` that differs from `recorded`: the path, a query parameter, or
/// a body field.
fn describe_difference(recorded: &ApiRequest, wanted: &ApiRequest) -> String {
    let split = |p: &str| -> (String, Vec<(String, String)>) {
        let (path, query) = p.split_once('?').unwrap_or((p, ""));
        let params = url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
        (path.to_string(), params)
    };
    let (rp, rq) = split(&recorded.path);
    let (wp, wq) = split(&wanted.path);
    if rp != wp {
        return format!("path: recorded {rp}, requested {wp}");
    }
    let mut diffs = Vec::new();
    for (k, v) in &wq {
        match rq.iter().find(|(rk, _)| rk == k) {
            Some((_, rv)) if rv != v => diffs.push(format!("query `{k}`: recorded {rv:?}, requested {v:?}")),
            None => diffs.push(format!("query `{k}`: not in the recording (requested {v:?})")),
            _ => {}
        }
    }
    for (k, _) in &rq {
        if !wq.iter().any(|(wk, _)| wk == k) {
            diffs.push(format!("query `{k}`: recorded but not requested"));
        }
    }
    if diffs.is_empty() {
        match (&recorded.body, &wanted.body) {
            (Some(Value::Object(r)), Some(Value::Object(w))) => {
                for (k, v) in w {
                    if r.get(k) != Some(v) {
                        diffs.push(format!("body field `{k}`"));
                    }
                }
            }
            (r, w) if r != w => diffs.push("body".to_string()),
            _ => {}
        }
    }
    if diffs.is_empty() { "nothing visible (order of repeated requests)".to_string() } else { diffs.join("; ") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(body: &str) -> ApiResponse {
        ApiResponse { status: 200, headers: vec![("openai-organization".into(), "org-secret".into())], body: Bytes::from(body.to_string()) }
    }

    #[test]
    fn record_then_replay_round_trips_and_redacts() {
        let dir = tempfile::tempdir().unwrap();
        let rec_dir = dir.path().join("rec");
        let rec = Recorder::create(&rec_dir).unwrap();
        let req = ApiRequest::get("/threads/thread_1");
        rec.record(&req, &resp(r#"{"id":"thread_1","note":"sk-test-123"}"#), "sk-test-123").unwrap();
        let emb = ApiRequest::post_embeddings(json!({"model": "m", "input": ["a", "b"], "encoding_format": "float"}));
        rec.record(&emb, &resp(r#"{"data":[{"index":0,"embedding":[1.0,0.0]},{"index":1,"embedding":[0.0,1.0]}]}"#), "k")
            .unwrap();
        let all: String = std::fs::read_dir(&rec_dir)
            .unwrap()
            .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
            .collect();
        assert!(!all.contains("sk-test-123"));
        assert!(!all.contains("org-secret"));

        let store = FixtureStore::load(&rec_dir).unwrap();
        let got = store.answer(&req).unwrap();
        assert!(String::from_utf8_lossy(&got.body).contains("<redacted>"));
        // A batch in another order is composed from the per-input index.
        let swapped = ApiRequest::post_embeddings(json!({"model": "m", "input": ["b", "a"], "encoding_format": "base64"}));
        let got: Value = serde_json::from_slice(&store.answer(&swapped).unwrap().body).unwrap();
        assert_eq!(decode_embedding(&got["data"][0]["embedding"]).unwrap(), vec![0.0, 1.0]);
        assert_eq!(decode_embedding(&got["data"][1]["embedding"]).unwrap(), vec![1.0, 0.0]);
        // A non-empty directory is refused for a new recording.
        assert!(Recorder::create(&rec_dir).is_err());
    }

    #[test]
    fn miss_names_the_closest_request_and_the_difference() {
        let dir = tempfile::tempdir().unwrap();
        let rec = Recorder::create(dir.path()).unwrap();
        rec.record(&ApiRequest::get("/threads/thread_1/messages?order=asc&limit=100&after=msg_8"), &resp("{}"), "")
            .unwrap();
        let store = FixtureStore::load(dir.path()).unwrap();
        let err = store
            .answer(&ApiRequest::get("/threads/thread_1/messages?order=asc&limit=100&after=msg_9"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("after=msg_9"), "{err}");
        assert!(err.contains("closest recorded: GET /threads/thread_1/messages?order=asc&limit=100&after=msg_8"), "{err}");
        assert!(err.contains("query `after`"), "{err}");
    }
}
