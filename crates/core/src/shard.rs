//! Sharding across machines: `--shard i/n` runs only the targets whose stable hash falls in
//! shard `i` of `n` (i from 0, like Kubernetes' `JOB_COMPLETION_INDEX`). The hash is of the
//! target name alone (the first 8 bytes of its SHA-256, modulo `n`), so every machine, every
//! version and every run agrees on the split without talking to the others; adding a target
//! moves no other target.

use sha2::{Digest, Sha256};

/// One shard of a split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    /// Parses `i/n` (`0/4` … `3/4`).
    pub fn parse(s: &str) -> Result<Shard, String> {
        let bad = || format!("`{s}` is not a shard: write `i/n` with 0 <= i < n, e.g. `0/4`");
        let (i, n) = s.trim().split_once('/').ok_or_else(bad)?;
        let index: u32 = i.trim().parse().map_err(|_| bad())?;
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }

    /// Whether `target` belongs to this shard.
    pub fn has(&self, target: &str) -> bool {
        shard_of(target, self.count) == self.index
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The shard (of `count`) a target name falls in.
pub fn shard_of(target: &str, count: u32) -> u32 {
    let d = Sha256::digest(target.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    (u64::from_be_bytes(b) % u64::from(count.max(1))) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse_and_split_every_target_exactly_once() {
        assert_eq!(Shard::parse("2/4"), Ok(Shard { index: 2, count: 4 }));
        for bad in ["4/4", "1/0", "x/2", "3", "-1/2", ""] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
        let names: Vec<String> = (0..1000).map(|i| format!("acct-{i}-us-east-1")).collect();
        let shards: Vec<Shard> = (0..4).map(|i| Shard { index: i, count: 4 }).collect();
        let mut sizes = [0usize; 4];
        for n in &names {
            let owners: Vec<&Shard> = shards.iter().filter(|s| s.has(n)).collect();
            assert_eq!(owners.len(), 1, "{n}");
            sizes[owners[0].index as usize] += 1;
        }
        // Roughly even (each within 20% of 250).
        assert!(sizes.iter().all(|&s| (200..=300).contains(&s)), "{sizes:?}");
        // Stable: the same name, the same shard, on every machine and version.
        assert_eq!(
            shard_of("production-us-east-1", 4),
            shard_of("production-us-east-1", 4)
        );
        assert_eq!(shard_of("x", 1), 0);
    }
}
