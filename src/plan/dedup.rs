//! Near-duplicate detection by Engramia's own rule: two tasks are the same pattern when their
//! lower-cased word sets have a Jaccard similarity of at least 0.92.
//!
//! Exact, and fast on 100,000 patterns per scope, without comparing all pairs: a prefix filter
//! (Chaudhuri et al.; PPJoin) probed in rarity order. Every word of every stored set is indexed
//! under (word, set size). Two sets of sizes n and s with Jaccard ≥ t share at least
//! `α = ceil(t/(1+t)·(n+s))` words, so the query misses at most `n - α` of its own words in any
//! qualifying set: probing any `n - α + 1` of its words finds every candidate of size s. The
//! probe takes the query's *rarest* words (by how many stored sets hold them), which keeps the
//! candidate lists short on real text, where "how", "do" and "the" are in every other task.

use std::collections::{HashMap, HashSet};

/// Engramia's near-duplicate threshold (`SIMILARITY_DUPLICATE` applied to word sets).
pub const JACCARD_THRESHOLD: f64 = 0.92;

/// Lower-cased, whitespace-split, de-duplicated words, as Engramia's `jaccard()` builds them;
/// hashed and sorted into the global order.
pub fn word_set(text: &str) -> Vec<u64> {
    let words: HashSet<String> = text.split_whitespace().map(str::to_lowercase).collect();
    let mut hashes: Vec<u64> = words.iter().map(|w| fnv1a(w.as_bytes())).collect();
    hashes.sort_unstable();
    hashes.dedup();
    hashes
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// Jaccard similarity of two sorted, de-duplicated sets.
pub fn jaccard(a: &[u64], b: &[u64]) -> f64 {
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let (mut i, mut j, mut common) = (0, 0, 0usize);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                common += 1;
                i += 1;
                j += 1;
            }
        }
    }
    common as f64 / (a.len() + b.len() - common) as f64
}

/// Words of a set of size `n` that must be probed to find every set of size `s` with
/// Jaccard ≥ `t` (0 when no set of that size can reach `t`).
fn probe_len(n: usize, s: usize, t: f64) -> usize {
    let overlap = (t / (1.0 + t) * (n + s) as f64 - 1e-9).ceil() as usize;
    if overlap > n.min(s) { 0 } else { n - overlap + 1 }
}

/// A stored task the index can point at.
#[derive(Debug, Clone, PartialEq)]
pub struct Known {
    pub key: String,
    pub success_score: f64,
}

#[derive(Debug, Clone)]
pub struct NearDupIndex {
    threshold: f64,
    entries: Vec<(Known, Vec<u64>)>,
    /// (word, set size) -> the sets of that size holding the word.
    buckets: HashMap<(u64, usize), Vec<u32>>,
    /// word -> how many stored sets hold it (the probe order).
    frequency: HashMap<u64, u32>,
}

impl Default for NearDupIndex {
    fn default() -> Self {
        NearDupIndex::new(JACCARD_THRESHOLD)
    }
}

impl NearDupIndex {
    pub fn new(threshold: f64) -> Self {
        NearDupIndex { threshold, entries: Vec::new(), buckets: HashMap::new(), frequency: HashMap::new() }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn insert(&mut self, key: &str, task: &str, success_score: f64) {
        let set = word_set(task);
        if set.is_empty() {
            return;
        }
        let id = self.entries.len() as u32;
        for &w in &set {
            self.buckets.entry((w, set.len())).or_default().push(id);
            *self.frequency.entry(w).or_default() += 1;
        }
        self.entries.push((Known { key: key.to_string(), success_score }, set));
    }

    /// The most similar stored task at or above the threshold, other than `except_key`.
    pub fn find(&self, task: &str, except_key: &str) -> Option<(&Known, f64)> {
        let set = word_set(task);
        if set.is_empty() {
            return None;
        }
        let mut by_rarity = set.clone();
        by_rarity.sort_by_key(|w| (self.frequency.get(w).copied().unwrap_or(0), *w));
        let n = set.len() as f64;
        let min = (self.threshold * n - 1e-9).ceil() as usize;
        let max = (n / self.threshold + 1e-9).floor() as usize;
        let mut seen = HashSet::new();
        let mut best: Option<(&Known, f64)> = None;
        for size in min.max(1)..=max {
            let probe = probe_len(set.len(), size, self.threshold);
            for &w in &by_rarity[..probe.min(by_rarity.len())] {
                let Some(ids) = self.buckets.get(&(w, size)) else { continue };
                for &id in ids {
                    if !seen.insert(id) {
                        continue;
                    }
                    let (known, other) = &self.entries[id as usize];
                    if known.key == except_key {
                        continue;
                    }
                    let j = jaccard(&set, other);
                    if j >= self.threshold && best.is_none_or(|(_, b)| j > b) {
                        best = Some((known, j));
                    }
                }
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(n: usize, offset: usize) -> String {
        (offset..offset + n).map(|i| format!("w{i}")).collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn matches_engramia_rule_exactly_at_the_threshold() {
        let mut idx = NearDupIndex::default();
        // 25 shared words out of 26 distinct: 25/26 = 0.9615 >= 0.92.
        idx.insert("patterns/a", &words(25, 0), 5.0);
        assert!(idx.find(&format!("{} extra", words(25, 0)), "").is_some());
        // 23/25 = 0.92 exactly: a duplicate. 22/25 = 0.88: not.
        let base = words(25, 100);
        idx.insert("patterns/b", &base, 5.0);
        assert!(idx.find(&words(23, 100), "").is_some_and(|(k, j)| k.key == "patterns/b" && (j - 0.92).abs() < 1e-9));
        assert!(idx.find(&words(22, 100), "").is_none());
        // Case and repeated words do not matter; the key itself is excluded.
        assert!(idx.find(&words(25, 0).to_uppercase(), "patterns/a").is_none());
        assert_eq!(idx.find(&words(25, 0).to_uppercase(), "patterns/x").unwrap().0.key, "patterns/a");
        assert!(idx.find("", "").is_none());
    }

    /// A deterministic pseudo-random sequence (an LCG).
    fn numbers(mut seed: u64) -> impl FnMut() -> usize {
        move || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 33) as usize
        }
    }

    /// Inserting `tasks` one by one, each lookup finds exactly the best match brute force finds
    /// among the earlier tasks (and nothing when that is under the threshold).
    fn assert_agrees_with_brute_force(tasks: &[String]) {
        let mut idx = NearDupIndex::default();
        for (i, t) in tasks.iter().enumerate() {
            let brute = tasks[..i].iter().map(|o| jaccard(&word_set(t), &word_set(o))).fold(0.0f64, f64::max);
            let found = idx.find(t, "").map(|(_, j)| j).unwrap_or(0.0);
            if brute >= JACCARD_THRESHOLD {
                assert!((found - brute).abs() < 1e-12, "task {i}: brute {brute}, index {found}");
            } else {
                assert_eq!(found, 0.0, "task {i}");
            }
            idx.insert(&format!("k{i}"), t, 5.0);
        }
    }

    #[test]
    fn agrees_with_brute_force_on_random_sets() {
        // Tasks over a small vocabulary, so near-duplicates occur.
        let mut next = numbers(42);
        let tasks: Vec<String> = (0..400)
            .map(|_| {
                let n = 5 + next() % 30;
                let start = next() % 40;
                (0..n).map(|i| format!("v{}", start + i + usize::from(next() % 20 == 0))).collect::<Vec<_>>().join(" ")
            })
            .collect();
        assert_agrees_with_brute_force(&tasks);
    }

    #[test]
    fn agrees_with_brute_force_when_common_words_dominate() {
        // Every task shares most of its words (as "how do i ... the ..." questions do), so the
        // probe order by rarity changes as the index grows; the result must stay exact.
        let mut next = numbers(7);
        let common = "how do i get the thing to work in our setup";
        let tasks: Vec<String> = (0..600)
            .map(|i| {
                let extra: Vec<String> = (0..next() % 4).map(|_| format!("x{}", next() % 12)).collect();
                let unique = if next() % 3 == 0 { format!(" u{i}") } else { String::new() };
                format!("{common} {}{unique}", extra.join(" "))
            })
            .collect();
        assert_agrees_with_brute_force(&tasks);
    }
}
