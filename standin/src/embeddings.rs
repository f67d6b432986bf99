//! `POST /v1/embeddings` (spec §9): request validation with OpenAI's limits and errors, and a
//! deterministic, roughly semantic vector per text.
//!
//! The vector is [`embed_text`] (engram's `embed::synthetic`, which `engram verify` also uses to
//! reproduce a stand-in recording's query vectors offline).

use std::fmt::Write as _;

use base64::Engine as _;
use serde_json::Value;

use super::error::ApiError;
pub use engram::embed::synthetic::embed_text;

/// Most inputs per request.
pub(crate) const MAX_INPUTS: usize = 2048;
/// Most tokens per input (cl100k_base), all embedding models.
pub(crate) const MAX_INPUT_TOKENS: usize = 8192;
/// Most tokens summed over a request.
pub(crate) const MAX_REQUEST_TOKENS: usize = 300_000;

const INPUT_INVALID: &str = "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.";
const BODY_INVALID: &str = "We could not parse the JSON body of your request. (HINT: This likely means you aren't \
    using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON. \
    If you have trouble figuring out how to fix this, please contact us through our help center at help.openai.com.)";

/// A successful answer: the JSON body and how many inputs it embedded.
pub(crate) struct Embedded {
    pub body: String,
    pub inputs: u64,
    /// Input tokens (cl100k_base), what a tokens-per-minute limit counts.
    pub tokens: u64,
}

/// Validates a request body and computes the answer. CPU-bound; run it off the async threads.
pub(crate) fn create(body: &[u8]) -> Result<Embedded, ApiError> {
    let Ok(Value::Object(req)) = serde_json::from_slice::<Value>(body) else {
        return Err(ApiError::invalid(BODY_INVALID));
    };
    if let Some(key) = req.keys().find(|k| {
        !["model", "input", "encoding_format", "dimensions", "user"].contains(&k.as_str())
    }) {
        return Err(ApiError::invalid(format!(
            "Unrecognized request argument supplied: {key}"
        )));
    }
    let model = match req.get("model") {
        Some(Value::String(m)) if !m.is_empty() => m.as_str(),
        _ => return Err(ApiError::invalid("you must provide a model parameter")),
    };
    let base64 = match req.get("encoding_format") {
        None | Some(Value::Null) => false,
        Some(v) if v == "float" => false,
        Some(v) if v == "base64" => true,
        Some(v) => {
            return Err(ApiError::invalid(format!(
                "Invalid value: {v}. Supported values are: 'float' and 'base64'."
            ))
            .param("encoding_format")
            .code("invalid_value"));
        }
    };
    if req
        .get("user")
        .is_some_and(|u| !u.is_string() && !u.is_null())
    {
        return Err(invalid_type("user", "a string"));
    }
    let dims = dimensions(model, req.get("dimensions"))?;
    let (texts, tokens, single) = inputs(req.get("input").unwrap_or(&Value::Null))?;

    for (i, &n) in tokens.iter().enumerate() {
        if n > MAX_INPUT_TOKENS {
            return Err(ApiError::invalid(if single {
                format!("Invalid 'input': maximum context length is {MAX_INPUT_TOKENS} tokens.")
            } else {
                format!("Invalid 'input[{i}]': maximum input length is {MAX_INPUT_TOKENS} tokens.")
            }));
        }
    }
    let total: usize = tokens.iter().sum();
    if total > MAX_REQUEST_TOKENS {
        let msg = format!("Requested {total} tokens, max {MAX_REQUEST_TOKENS} tokens per request");
        return Err(ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "max_tokens_per_request",
            msg,
        )
        .code("max_tokens_per_request"));
    }

    let mut out = String::with_capacity(texts.len() * dims * if base64 { 6 } else { 12 } + 256);
    out.push_str(r#"{"object":"list","data":["#);
    for (i, text) in texts.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, r#"{{"object":"embedding","index":{i},"embedding":"#);
        let v = embed_text(text, dims);
        if base64 {
            let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            let _ = write!(
                out,
                "\"{}\"",
                base64::engine::general_purpose::STANDARD.encode(bytes)
            );
        } else {
            out.push('[');
            for (k, x) in v.iter().enumerate() {
                // Display prints the shortest text that parses back to the same f32.
                let _ = write!(out, "{}{x}", if k > 0 { "," } else { "" });
            }
            out.push(']');
        }
        out.push('}');
    }
    let model_json = Value::from(model).to_string();
    let _ = write!(
        out,
        r#"],"model":{model_json},"usage":{{"prompt_tokens":{total},"total_tokens":{total}}}}}"#
    );
    Ok(Embedded {
        body: out,
        inputs: texts.len() as u64,
        tokens: total as u64,
    })
}

fn invalid_type(param: &str, expected: &str) -> ApiError {
    ApiError::invalid(format!("Invalid type for '{param}': expected {expected}."))
        .param(param)
        .code("invalid_type")
}

/// The vector length: `dimensions` if given (1..=the model's size), else the model's size.
fn dimensions(model: &str, requested: Option<&Value>) -> Result<usize, ApiError> {
    let (native, max) = match model {
        "text-embedding-3-large" => (3072, 3072),
        "text-embedding-3-small" | "text-embedding-ada-002" => (1536, 1536),
        _ => (1536, 8192),
    };
    let Some(requested) = requested.filter(|v| !v.is_null()) else {
        return Ok(native);
    };
    if model == "text-embedding-ada-002" {
        return Err(
            ApiError::invalid("This model does not support specifying dimensions.")
                .param("dimensions"),
        );
    }
    let n = requested
        .as_i64()
        .ok_or_else(|| invalid_type("dimensions", "an integer"))?;
    if n < 1 {
        return Err(ApiError::invalid(format!(
            "Invalid 'dimensions': integer below minimum value. Expected a value >= 1, but got {n} instead."
        ))
        .param("dimensions")
        .code("integer_below_min_value"));
    }
    if n > max {
        return Err(ApiError::invalid(format!(
            "Invalid 'dimensions': integer above maximum value. Expected a value <= {max}, but got {n} instead."
        ))
        .param("dimensions")
        .code("integer_above_max_value"));
    }
    Ok(n as usize)
}

/// The texts to embed, their cl100k token counts, and whether `input` was a single input
/// (a string or one token array) rather than a list.
fn inputs(input: &Value) -> Result<(Vec<String>, Vec<usize>, bool), ApiError> {
    let invalid = || ApiError::invalid(INPUT_INVALID);
    let bpe = tiktoken_rs::cl100k_base_singleton();
    let text = |s: &str| (s.to_string(), bpe.count_ordinary(s));
    let tokens = |a: &[Value]| -> Result<(String, usize), ApiError> {
        if a.is_empty() || a.len() > MAX_INPUTS {
            return Err(invalid());
        }
        let ids = a
            .iter()
            .map(|t| t.as_u64().and_then(|t| u32::try_from(t).ok()))
            .collect::<Option<Vec<u32>>>();
        let ids = ids.ok_or_else(invalid)?;
        let bytes = bpe.decode_bytes(&ids).map_err(|e| {
            ApiError::invalid(format!(
                "Invalid 'input': {} is not a cl100k_base token id.",
                e.token
            ))
            .param("input")
        })?;
        Ok((String::from_utf8_lossy(&bytes).into_owned(), ids.len()))
    };
    let (pairs, single): (Vec<(String, usize)>, bool) = match input {
        Value::String(s) if !s.is_empty() => (vec![text(s)], true),
        Value::Array(a) if a.is_empty() || a.len() > MAX_INPUTS => return Err(invalid()),
        Value::Array(a) if a.iter().all(Value::is_string) => {
            let strings = a.iter().filter_map(Value::as_str);
            (
                strings
                    .map(|s| {
                        if s.is_empty() {
                            Err(invalid())
                        } else {
                            Ok(text(s))
                        }
                    })
                    .collect::<Result<_, _>>()?,
                false,
            )
        }
        Value::Array(a) if a.iter().all(Value::is_number) => (vec![tokens(a)?], true),
        Value::Array(a) if a.iter().all(Value::is_array) => (
            a.iter()
                .filter_map(Value::as_array)
                .map(|t| tokens(t))
                .collect::<Result<_, _>>()?,
            false,
        ),
        _ => return Err(invalid()),
    };
    let (texts, counts) = pairs.into_iter().unzip();
    Ok((texts, counts, single))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_and_text_inputs_agree() {
        let ids = tiktoken_rs::cl100k_base_singleton().encode_ordinary("rotate keys");
        let body = serde_json::json!({"model": "m", "input": [ids], "dimensions": 8}).to_string();
        let via_tokens: Value =
            serde_json::from_str(&create(body.as_bytes()).unwrap().body).unwrap();
        let body =
            serde_json::json!({"model": "m", "input": "rotate keys", "dimensions": 8}).to_string();
        let via_text: Value = serde_json::from_str(&create(body.as_bytes()).unwrap().body).unwrap();
        assert_eq!(
            via_tokens["data"][0]["embedding"],
            via_text["data"][0]["embedding"]
        );
        assert_eq!(via_tokens["usage"], via_text["usage"]);
    }

    #[test]
    fn request_errors() {
        let err = |v: Value| {
            create(v.to_string().as_bytes())
                .err()
                .map(|e| (e.kind, e.message))
        };
        let input_invalid = Some(("invalid_request_error", INPUT_INVALID.to_string()));
        assert_eq!(
            err(serde_json::json!({"model": "m", "input": ""})),
            input_invalid
        );
        assert_eq!(
            err(serde_json::json!({"model": "m", "input": []})),
            input_invalid
        );
        assert_eq!(
            err(serde_json::json!({"model": "m", "input": [[]]})),
            input_invalid
        );
        assert_eq!(
            err(serde_json::json!({"model": "m", "input": ["a", 1]})),
            input_invalid
        );
        assert_eq!(
            err(serde_json::json!({"model": "m", "input": [-1]})),
            input_invalid
        );
        let e = err(serde_json::json!({"model": "m", "input": "a", "extra": 1})).unwrap();
        assert_eq!(e.1, "Unrecognized request argument supplied: extra");
        let e = err(
            serde_json::json!({"model": "text-embedding-ada-002", "input": "a", "dimensions": 8}),
        )
        .unwrap();
        assert_eq!(e.1, "This model does not support specifying dimensions.");
        let e = err(serde_json::json!({"model": "text-embedding-3-small", "input": "a", "dimensions": 1537})).unwrap();
        assert!(e.1.contains("<= 1536"));
        let long = "word ".repeat(MAX_INPUT_TOKENS + 10);
        let e = err(serde_json::json!({"model": "m", "input": ["ok", long]})).unwrap();
        assert_eq!(
            e.1,
            "Invalid 'input[1]': maximum input length is 8192 tokens."
        );
        let chunk = "word ".repeat(8000);
        let e = err(serde_json::json!({"model": "m", "input": vec![chunk; 38]})).unwrap();
        assert_eq!(e.0, "max_tokens_per_request");
        assert!(
            e.1.starts_with("Requested 304") && e.1.ends_with("max 300000 tokens per request"),
            "{}",
            e.1
        );
        assert!(create(b"{not json").is_err());
    }
}
