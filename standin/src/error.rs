//! OpenAI's error envelope, `{"error":{"message","type","param","code"}}` (all four keys always
//! present, `param`/`code` nullable), and constructors for the errors the stand-in sends.

use axum::http::StatusCode;
use serde_json::json;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// The envelope's `type`.
    pub kind: &'static str,
    pub param: Option<String>,
    pub code: Option<&'static str>,
    /// Seconds for `retry-after` (429s only).
    pub retry_after: Option<f64>,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            kind,
            param: None,
            code: None,
            retry_after: None,
        }
    }

    /// 400 `invalid_request_error`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }

    /// 404 `invalid_request_error`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "invalid_request_error", message)
    }

    pub fn param(mut self, param: &str) -> Self {
        self.param = Some(param.to_string());
        self
    }

    pub fn code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    /// 404 for a path no route serves (and, after the shutdown, for every Assistants route).
    pub fn invalid_url(method: &str, path: &str) -> Self {
        Self::not_found(format!("Invalid URL ({method} {path})"))
    }

    /// 400 for a path id with the wrong prefix, e.g. `thread_id` that does not begin `thread`.
    pub fn bad_prefix(param: &str, value: &str, prefix: &str) -> Self {
        Self::invalid(format!(
            "Invalid '{param}': '{value}'. Expected an ID that begins with '{prefix}'."
        ))
        .param(param)
        .code("invalid_value")
    }

    /// 429 `requests`/`rate_limit_exceeded`, the body of a per-minute request limit.
    /// 429 `tokens`/`rate_limit_exceeded`: an embeddings request over the tokens-per-minute limit.
    pub fn tokens_rate_limited(limit: u64, used: u64, requested: u64, retry_after: f64) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "tokens",
            format!(
                "Rate limit reached for text-embedding-3-small in organization org-standin on tokens per min \
                 (TPM): Limit {limit}, Used {used}, Requested {requested}. Please try again in {}. Visit \
                 https://platform.openai.com/account/rate-limits to learn more.",
                super::faults::go_duration(std::time::Duration::from_secs_f64(retry_after))
            ),
        )
        .code("rate_limit_exceeded");
        e.retry_after = Some(retry_after);
        e
    }

    pub fn rate_limited(limit: u64, retry_after: f64) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "requests",
            format!(
                "Rate limit reached for requests in organization org-standin on requests per min \
                 (RPM): Limit {limit}, Used {limit}, Requested 1. Please try again in {}. Visit \
                 https://platform.openai.com/account/rate-limits to learn more.",
                super::faults::go_duration(std::time::Duration::from_secs_f64(retry_after))
            ),
        )
        .code("rate_limit_exceeded");
        e.retry_after = Some(retry_after);
        e
    }

    /// 500 `server_error` with OpenAI's wording.
    pub fn server_error() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "The server had an error while processing your request. Sorry about that!",
        )
    }

    pub fn body(&self) -> String {
        json!({"error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        }})
        .to_string()
    }
}

/// Masks an API key the way OpenAI's 401 does: a few leading and trailing characters around
/// stars, never more than half the key (`sk-abcd******************wxyz`).
pub(crate) fn mask_key(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    let n = chars.len();
    let head = (n / 4).min(8);
    let tail = (n / 4).min(4);
    let mut out: String = chars[..head].iter().collect();
    out.extend(std::iter::repeat_n('*', n - head - tail));
    out.extend(&chars[n - tail..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_never_show_the_whole_key() {
        assert_eq!(
            mask_key("sk-abcdefghijklmnopqrstuvwxyz"),
            "sk-abcd******************wxyz"
        );
        assert_eq!(mask_key("wrong"), "w***g");
        assert_eq!(mask_key("abc"), "***");
        assert_eq!(mask_key(""), "");
    }

    #[test]
    fn envelope_has_all_four_keys() {
        let v: serde_json::Value = serde_json::from_str(&ApiError::invalid("x").body()).unwrap();
        assert_eq!(
            v,
            json!({"error": {"message": "x", "type": "invalid_request_error", "param": null, "code": null}})
        );
    }
}
