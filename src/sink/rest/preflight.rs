//! What engram checks on an Engramia server before its first write (also in a dry run): the
//! server's version (whether `/v1/import` embeds), and per key its role, the project it lands
//! in, the storage kind and the pattern quota.
//!
//! A key alone fixes the tenant and project on Engramia (no header selects one), so the only
//! way to know where a key writes is to ask: `GET /v1/keys` lists the keys of the caller's own
//! project, with its `tenant_id`/`project_id` and each key's role. A server without a database
//! (env-key auth, `ENGRAMIA_API_KEYS`) answers that with 503 STORAGE_ERROR; its keys always
//! land in `default/default`.

use super::client::{ApiError, ApiKey, Client};
use crate::record::Scope;
use reqwest::Method;
use serde::Deserialize;

/// `GET /v1/version`.
#[derive(Debug, Clone, Deserialize)]
pub struct Version {
    pub app_version: String,
}

/// `(major, minor, patch)` of a PEP 440 version like `0.7.0.dev0` or `0.6.6`.
pub fn parse_version(v: &str) -> Option<(u64, u64, u64)> {
    let mut parts = v.trim().trim_start_matches('v').split(['.', '-', '+']);
    let num = |s: Option<&str>| -> Option<u64> {
        let s = s?;
        let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    };
    Some((num(parts.next())?, num(parts.next()).unwrap_or(0), num(parts.next()).unwrap_or(0)))
}

/// Whether `/v1/import` of this version embeds each record (from 0.7.0 on; 0.6.6 stores
/// without embedding, so recall never finds the imports).
pub fn embeds_on_import(v: &str) -> Option<bool> {
    parse_version(v).map(|(major, minor, _)| (major, minor) >= (0, 7))
}

/// What one key can do where.
#[derive(Debug, Clone)]
pub struct KeyFacts {
    /// Where the key writes.
    pub scope: Scope,
    /// How that was learnt: "its row in /v1/keys", or the env-key rule.
    pub scope_source: &'static str,
    /// The key's role, when the server says.
    pub role: Option<String>,
    /// `/v1/health` `storage` (`JSONStorage`, `PostgresStorage`).
    pub storage: String,
    /// `/v1/billing/status`: patterns the project holds, and the plan's pattern limit.
    pub patterns_used: Option<u64>,
    pub patterns_limit: Option<u64>,
}

/// Share of the plan's pattern limit one project may fill (Engramia's default
/// `ENGRAMIA_PROJECT_QUOTA_PCT`; a self-hosted server may set another).
pub const PROJECT_QUOTA_SHARE: f64 = 0.8;

impl KeyFacts {
    /// The project's pattern cap as Engramia computes it by default.
    pub fn project_cap(&self) -> Option<u64> {
        self.patterns_limit.map(|l| (l as f64 * PROJECT_QUOTA_SHARE) as u64)
    }
}

/// Why a key cannot be used, already worded for the user.
#[derive(Debug)]
pub enum KeyProblem {
    /// Exit 2: the key is wrong, too weak, or points elsewhere.
    Config(String),
    /// Exit 1: the server failed.
    Failed(String),
}

#[derive(Deserialize)]
struct Health {
    #[serde(default)]
    storage: String,
}

#[derive(Deserialize)]
struct KeyList {
    keys: Vec<KeyRow>,
}

#[derive(Deserialize)]
struct KeyRow {
    #[serde(default)]
    key_prefix: String,
    #[serde(default)]
    role: String,
    tenant_id: String,
    project_id: String,
    #[serde(default)]
    revoked_at: Option<String>,
}

#[derive(Deserialize)]
struct Billing {
    patterns_used: Option<u64>,
    patterns_limit: Option<u64>,
}

/// Roles that may import and export.
pub const WRITER_ROLES: [&str; 2] = ["admin", "owner"];

/// The message for a key refused outright (401) or too weak (403).
pub fn key_refused(server: &str, key: &ApiKey, project: &str, err: &ApiError) -> KeyProblem {
    match err.status() {
        Some(401) => KeyProblem::Config(format!(
            "{server} refused the API key in ${} for project {project} ({err}).\n  Set {} to an API key of that project (Engramia Cloud: dashboard > API keys; self-hosted: ENGRAMIA_API_KEYS, or POST /v1/keys). Nothing was written.",
            key.var, key.var
        )),
        Some(403) => KeyProblem::Config(format!(
            "the API key in ${} may not import into project {project} on {server} ({err}).\n  engram needs an admin or owner key: an owner creates one with POST /v1/keys {{\"name\":\"migration\",\"role\":\"admin\"}} (Cloud: dashboard > API keys, role admin). Nothing was written.",
            key.var
        )),
        _ => KeyProblem::Failed(format!("{server}: checking the key in ${} for project {project}: {err}", key.var)),
    }
}

/// Asks the server what `key` is: `/v1/health`, `/v1/keys`, `/v1/billing/status`.
pub async fn check_key(client: &Client, key: &ApiKey, project: &str) -> Result<KeyFacts, KeyProblem> {
    let server = client.base();
    let health: Health = client.json(Method::GET, "/v1/health", Some(key), None).await.map_err(|e| key_refused(server, key, project, &e))?;
    let (scope, scope_source, role) = match client.json::<KeyList>(Method::GET, "/v1/keys", Some(key), None).await {
        Ok(list) => {
            let live: Vec<&KeyRow> = list.keys.iter().filter(|r| r.revoked_at.is_none()).collect();
            let Some(first) = live.first().copied().or(list.keys.first()) else {
                return Err(KeyProblem::Failed(format!("{server}: GET /v1/keys listed no key for the key in ${}", key.var)));
            };
            let mine = key.display_prefix().and_then(|p| live.iter().find(|r| r.key_prefix == p));
            (Scope::new(first.tenant_id.clone(), first.project_id.clone()), "its project in GET /v1/keys", mine.map(|r| r.role.clone()))
        }
        // No database behind the server: env-key auth, every key in default/default.
        Err(ApiError::Status { status: 503, code, .. }) if code == "STORAGE_ERROR" => {
            (Scope::new("default", "default"), "env-key auth: a server without a database puts every key there", None)
        }
        Err(e) if e.status() == Some(403) => return Err(key_refused(server, key, project, &e)),
        Err(e) => return Err(KeyProblem::Failed(format!("{server}: GET /v1/keys with the key in ${}: {e}", key.var))),
    };
    if let Some(r) = &role
        && !WRITER_ROLES.contains(&r.as_str())
    {
        return Err(KeyProblem::Config(format!(
            "the API key in ${} has the role {r:?} on {server} (project {scope}); importing needs an admin or owner key.\n  An owner creates one with POST /v1/keys {{\"name\":\"migration\",\"role\":\"admin\"}} (Cloud: dashboard > API keys). Nothing was written.",
            key.var
        )));
    }
    let billing = match client.json::<Billing>(Method::GET, "/v1/billing/status", Some(key), None).await {
        Ok(b) => b,
        Err(e) if matches!(e.status(), Some(401 | 403 | 404 | 501 | 503)) => Billing { patterns_used: None, patterns_limit: None },
        Err(e) => return Err(KeyProblem::Failed(format!("{server}: GET /v1/billing/status with the key in ${}: {e}", key.var))),
    };
    Ok(KeyFacts {
        scope,
        scope_source,
        role,
        storage: health.storage,
        patterns_used: billing.patterns_used,
        patterns_limit: billing.patterns_limit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(parse_version("0.7.0.dev0"), Some((0, 7, 0)));
        assert_eq!(parse_version("0.6.6"), Some((0, 6, 6)));
        assert_eq!(parse_version("1.2"), Some((1, 2, 0)));
        assert_eq!(parse_version("v0.10.1rc1"), Some((0, 10, 1)));
        assert_eq!(parse_version("unknown"), None);
        assert_eq!(embeds_on_import("0.7.0.dev0"), Some(true));
        assert_eq!(embeds_on_import("0.6.7.dev0"), Some(false));
        assert_eq!(embeds_on_import("0.6.6"), Some(false));
        assert_eq!(embeds_on_import("1.0.0"), Some(true));
    }

    #[test]
    fn default_project_cap_is_80_percent() {
        let f = KeyFacts {
            scope: Scope::new("default", "default"),
            scope_source: "",
            role: None,
            storage: String::new(),
            patterns_used: Some(0),
            patterns_limit: Some(10_000),
        };
        assert_eq!(f.project_cap(), Some(8000));
        assert_eq!(KeyFacts { patterns_limit: None, ..f }.project_cap(), None);
    }
}
