//! Deterministic storage keys.
//!
//! Engramia names patterns `patterns/<8 hex of sha256(task)>_<unix ms>_<6 random chars>`. We keep
//! that shape (any key under `patterns/` is read) but derive the last part from where the record
//! came from instead of a random source, so a rerun produces the same key and the plan can say
//! "unchanged". Keys must be unique across *all* scopes (the Postgres primary key is the bare
//! key), hence the scope is hashed in.

use crate::record::Scope;
use sha2::{Digest, Sha256};

/// Bumped only if the derivation changes; old keys would then stop matching on reruns.
const KEY_DOMAIN: &[u8] = b"engram/pattern-key/v1";

const BASE36: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// `patterns/<first 8 hex of sha256(task)>_<created_at_ms>_<6 base36 chars>`, where the last
/// part is derived from the scope and the source ids (OpenAI message ids, or assistant id and
/// tool name). Same input, same key; another scope or other ids, another key.
pub fn pattern_key(task: &str, created_at_ms: i64, scope: &Scope, ids: &[&str]) -> String {
    let task_hash = hex::encode(Sha256::digest(task.as_bytes()));
    // A time before 1970 (a server's bogus `created_at`) is written as 0: a `-` would put the
    // key outside `patterns/[0-9a-z_]+`. The suffix still tells such records apart.
    format!("patterns/{}_{}_{}", &task_hash[..8], created_at_ms.max(0), suffix(scope, ids))
}

/// Six base36 chars from sha256 over the scope and ids. Each field is length-prefixed so that
/// ("ab", "c") and ("a", "bc") cannot collide.
fn suffix(scope: &Scope, ids: &[&str]) -> String {
    let mut h = Sha256::new();
    h.update(KEY_DOMAIN);
    for field in [scope.tenant.as_str(), scope.project.as_str()].into_iter().chain(ids.iter().copied()) {
        h.update((field.len() as u64).to_be_bytes());
        h.update(field.as_bytes());
    }
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    // 64 bits reduced to 36^6 (~2.2e9) values; the modulo bias is far below anything that matters.
    let mut n = u64::from_be_bytes(first);
    let mut out = [0u8; 6];
    for slot in out.iter_mut().rev() {
        *slot = BASE36[(n % 36) as usize];
        n /= 36;
    }
    out.iter().map(|&b| b as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(p: &str) -> Scope {
        Scope::new("acme", p)
    }

    /// Checks `patterns/<8 hex>_<digits>_<6 [0-9a-z]>` by hand (no regex crate).
    fn well_formed(key: &str) -> bool {
        let Some(rest) = key.strip_prefix("patterns/") else { return false };
        let parts: Vec<&str> = rest.split('_').collect();
        parts.len() == 3
            && parts[0].len() == 8
            && parts[0].chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
            && !parts[1].is_empty()
            && parts[1].chars().all(|c| c.is_ascii_digit())
            && parts[2].len() == 6
            && parts[2].chars().all(|c| c.is_ascii_digit() || c.is_ascii_lowercase())
    }

    #[test]
    fn same_input_same_key() {
        let a = pattern_key("How do I reset?", 1_700_000_000_000, &scope("support"), &["msg_1", "msg_2"]);
        let b = pattern_key("How do I reset?", 1_700_000_000_000, &scope("support"), &["msg_1", "msg_2"]);
        assert_eq!(a, b);
        assert!(well_formed(&a), "{a}");
        assert!(a.starts_with("patterns/"));
        assert!(a.contains("_1700000000000_"), "{a}");
    }

    #[test]
    fn task_prefix_is_sha256_of_task() {
        let k = pattern_key("abc", 0, &scope("p"), &["m"]);
        // sha256("abc") = ba7816bf...
        assert!(k.starts_with("patterns/ba7816bf_0_"), "{k}");
    }

    #[test]
    fn scope_and_ids_change_the_key() {
        let base = pattern_key("t", 1, &scope("support"), &["msg_1", "msg_2"]);
        assert_ne!(base, pattern_key("t", 1, &scope("sales"), &["msg_1", "msg_2"]));
        assert_ne!(base, pattern_key("t", 1, &Scope::new("other", "support"), &["msg_1", "msg_2"]));
        assert_ne!(base, pattern_key("t", 1, &scope("support"), &["msg_1", "msg_3"]));
        assert_ne!(base, pattern_key("t", 1, &scope("support"), &["msg_1"]));
        // Field boundaries matter.
        assert_ne!(
            pattern_key("t", 1, &scope("p"), &["ab", "c"]),
            pattern_key("t", 1, &scope("p"), &["a", "bc"])
        );
    }

    #[test]
    fn times_before_1970_keep_the_key_well_formed() {
        let k = pattern_key("t", -1, &scope("p"), &["m"]);
        assert!(well_formed(&k), "{k}");
        assert!(k.contains("_0_"), "{k}");
        assert!(well_formed(&pattern_key("t", i64::MIN, &scope("p"), &["m"])));
    }

    #[test]
    fn well_formed_rejects_bad_shapes() {
        assert!(!well_formed("patterns/ABCDEF12_1_abcdef"));
        assert!(!well_formed("patterns/abcdef12_1_abcde"));
        assert!(!well_formed("patterns/abcdef12_x_abcdef"));
        assert!(well_formed("patterns/abcdef12_1_abc0ef"));
    }
}
