//! `--shard I/N` (`[source] shard`): a stable split of the account into N disjoint parts by id,
//! so that N processes — on one machine or several — migrate one part each into the same
//! Engramia.
//!
//! The split is FNV-1a (64-bit) of the id, modulo N: fixed by the id alone, the same on every
//! machine, platform and engram version, whatever the order or the size of the thread list.
//! A shard takes the threads (conversations, NDJSON and export threads) whose id falls in it,
//! the function tools of the assistants whose id falls in it, and the files and vector stores
//! that assistants hold whose id falls in it. A file that threads refer to is migrated by the
//! shard that reads the thread (a file cited from threads of several shards is migrated by each,
//! to the same keys).

use std::fmt;

/// Part `index` (1-based) of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

/// The largest N: more processes than this against one database would mostly wait on each
/// other's writes.
pub const MAX_SHARDS: u32 = 1024;

impl Shard {
    /// `"I/N"`, 1 <= I <= N <= MAX_SHARDS.
    pub fn parse(s: &str) -> Result<Shard, String> {
        let bad = || format!("shard {s:?}: write it as I/N, part I of N (1 <= I <= N <= {MAX_SHARDS}), e.g. 2/3");
        let (i, n) = s.trim().split_once('/').ok_or_else(bad)?;
        let (index, count): (u32, u32) = (i.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
        if index == 0 || count == 0 || index > count || count > MAX_SHARDS {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }

    /// Whether `id` belongs to this part.
    pub fn owns(&self, id: &str) -> bool {
        fnv1a64(id.as_bytes()) % u64::from(self.count) == u64::from(self.index - 1)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Keeps what `shard` owns (everything without a shard).
pub fn owns(shard: Option<Shard>, id: &str) -> bool {
    shard.is_none_or(|s| s.owns(id))
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        assert_eq!(Shard::parse("2/3"), Ok(Shard { index: 2, count: 3 }));
        assert_eq!(Shard::parse(" 1 / 1 ").unwrap().to_string(), "1/1");
        for bad in ["0/3", "4/3", "3", "a/b", "1/0", "1/2000", ""] {
            assert!(Shard::parse(bad).unwrap_err().contains("I/N"), "{bad}");
        }
    }

    #[test]
    fn every_id_falls_in_exactly_one_part() {
        let ids: Vec<String> = (0..3000).map(|i| format!("thread_{i:024}")).collect();
        for count in [1, 2, 3, 7] {
            let mut sizes = vec![0usize; count as usize];
            for id in &ids {
                let owners: Vec<u32> = (1..=count).filter(|&i| Shard { index: i, count }.owns(id)).collect();
                assert_eq!(owners.len(), 1, "{id} in {owners:?} of {count}");
                sizes[owners[0] as usize - 1] += 1;
            }
            // Roughly even: no part under half its share.
            let share = ids.len() / count as usize;
            assert!(sizes.iter().all(|&n| n * 2 > share), "{count}: {sizes:?}");
        }
    }

    #[test]
    fn the_split_is_fixed_by_the_id() {
        // FNV-1a 64 reference values: the split must never change between versions, or a rerun
        // shard would take other threads than it did.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
        assert!(owns(None, "anything"));
    }
}
