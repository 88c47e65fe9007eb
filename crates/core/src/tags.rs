//! [`TagMap`]: a secret's tags (or metadata) as a listing read them, stored compactly.
//!
//! A listing holds one map per secret of the target until it is planned, for every target at
//! once: at 100,000 secrets a `BTreeMap<String, String>` (a 544-byte node and a heap string for
//! every key, for five tags) was the largest part of the memory. A `TagMap` is a sorted vector
//! of exactly its length, and the keys SecretSync writes itself are shared static strings.

use std::borrow::{Borrow, Cow};
use std::collections::BTreeMap;
use std::fmt;

use crate::diff::{
    MANAGED_VALUE, TAG_FINGERPRINT, TAG_HASH, TAG_MANAGED, TAG_OWNER, TAG_ROLE, TAG_TARGET,
    TAG_VERSION,
};
use crate::targets::aws_sm::{TAG_KMS_KEY, TAG_REPLICAS};
use crate::targets::aws_ssm::TAG_PATH;

/// The keys (and the one constant value) stored without a heap copy.
const KNOWN: &[&str] = &[
    TAG_MANAGED,
    MANAGED_VALUE,
    TAG_OWNER,
    TAG_TARGET,
    TAG_FINGERPRINT,
    TAG_HASH,
    TAG_VERSION,
    TAG_ROLE,
    TAG_REPLICAS,
    TAG_KMS_KEY,
    TAG_PATH,
];

fn key_of(k: impl Into<String> + AsRef<str>) -> Cow<'static, str> {
    match KNOWN.iter().find(|known| **known == k.as_ref()) {
        Some(known) => Cow::Borrowed(known),
        None => Cow::Owned(k.into()),
    }
}

/// Tags by key, sorted, unique; the subset of `BTreeMap`'s API the engine uses.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TagMap(Vec<(Cow<'static, str>, String)>);

impl TagMap {
    fn find(&self, key: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.as_ref().cmp(key))
    }

    pub fn get<Q: Borrow<str> + ?Sized>(&self, key: &Q) -> Option<&String> {
        self.find(key.borrow()).ok().map(|i| &self.0[i].1)
    }

    pub fn contains_key<Q: Borrow<str> + ?Sized>(&self, key: &Q) -> bool {
        self.find(key.borrow()).is_ok()
    }

    /// Sets `key` to `value`; returns the value it had.
    pub fn insert(&mut self, key: impl Into<String> + AsRef<str>, value: String) -> Option<String> {
        match self.find(key.as_ref()) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, value)),
            Err(i) => {
                self.0.insert(i, (key_of(key), value));
                None
            }
        }
    }

    pub fn remove<Q: Borrow<str> + ?Sized>(&mut self, key: &Q) -> Option<String> {
        self.find(key.borrow()).ok().map(|i| self.0.remove(i).1)
    }

    /// Tags in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &String)> {
        self.0.iter().map(|(k, v)| (k.as_ref(), v))
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(k, _)| k.as_ref())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The tags as an ordinary map (for APIs that take one).
    pub fn to_map(&self) -> BTreeMap<String, String> {
        self.iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }
}

impl<K: Into<String> + AsRef<str>> FromIterator<(K, String)> for TagMap {
    fn from_iter<I: IntoIterator<Item = (K, String)>>(iter: I) -> Self {
        let mut v: Vec<(Cow<'static, str>, String)> =
            iter.into_iter().map(|(k, v)| (key_of(k), v)).collect();
        // Sorted and unique like a map: the last value of a repeated key wins.
        v.reverse();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v.dedup_by(|b, a| a.0 == b.0);
        v.shrink_to_fit();
        TagMap(v)
    }
}

impl From<BTreeMap<String, String>> for TagMap {
    fn from(m: BTreeMap<String, String>) -> Self {
        m.into_iter().collect()
    }
}

impl fmt::Debug for TagMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_like_a_map() {
        let mut t: TagMap = [
            ("z".to_string(), "1".to_string()),
            (TAG_OWNER.to_string(), "o".to_string()),
            ("z".to_string(), "2".to_string()),
        ]
        .into_iter()
        .collect();
        assert_eq!(t.len(), 2);
        assert_eq!(
            t.get("z"),
            Some(&"2".to_string()),
            "the last value of a key wins"
        );
        assert!(
            matches!(t.0[0].0, Cow::Borrowed(_)),
            "a known key is not copied"
        );
        assert_eq!(t.insert("a", "x".into()), None);
        assert_eq!(t.insert("a", "y".into()), Some("x".into()));
        assert_eq!(t.keys().collect::<Vec<_>>(), ["a", TAG_OWNER, "z"]);
        assert_eq!(t.remove(TAG_OWNER), Some("o".into()));
        assert!(!t.contains_key(TAG_OWNER));
        let m = t.to_map();
        assert_eq!(TagMap::from(m.clone()), t);
        assert_eq!(m.len(), 2);
    }
}
