//! Keyed fingerprints of secret values.
//!
//! Every fingerprint SecretSync writes anywhere (ownership tags, merge-store manifests, history,
//! plan files) is an HMAC-SHA256 of the value's canonical JSON under a [`FingerprintKey`], never
//! a plain hash: a reader who may list or describe secrets but not read them cannot test a
//! guessed value against it. The key is random (32 bytes) and lives beside the values it
//! protects (a secret of the tool's own in each target account and region; an object in the
//! merge store), so only principals that can read values can obtain it. Generating and storing
//! keys is the engine's business; this module only computes.
//!
//! [`legacy_content_hash`] (plain SHA-256) exists only to recognise tags written by versions
//! before 0.2, so that they can be replaced without rewriting values.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use zeroize::Zeroize;

use crate::secret::SecretValue;

/// Length of a key in bytes.
pub const KEY_LEN: usize = 32;

/// A fingerprint key. `Debug` redacts; zeroized on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct FingerprintKey([u8; KEY_LEN]);

impl FingerprintKey {
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        FingerprintKey(bytes)
    }

    /// Parses the stored form (64 hex characters).
    pub fn from_hex(s: &str) -> Option<Self> {
        let mut bytes = [0u8; KEY_LEN];
        hex::decode_to_slice(s.trim(), &mut bytes).ok()?;
        Some(FingerprintKey(bytes))
    }

    /// The stored form (64 hex characters). Callers must treat it as a secret.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// A short public identifier of the key (not usable to compute fingerprints): lets a
    /// reader tell which key a fingerprint was made with.
    pub fn id(&self) -> String {
        hex::encode(&self.mac(b"secretsync key id")[..4])
    }

    fn mac(&self, data: &[u8]) -> Vec<u8> {
        let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0)
            .expect("HMAC accepts keys of any length");
        m.update(data);
        m.finalize().into_bytes().to_vec()
    }

    /// HMAC-SHA256 of the value's canonical JSON, hex encoded (64 characters).
    pub fn fingerprint(&self, value: &SecretValue) -> String {
        let mut json = value.canonical_json();
        let out = hex::encode(self.mac(json.as_bytes()));
        json.zeroize();
        out
    }

    /// HMAC-SHA256 of arbitrary bytes (manifests, plan files), hex encoded.
    pub fn fingerprint_bytes(&self, data: &[u8]) -> String {
        hex::encode(self.mac(data))
    }
}

impl fmt::Debug for FingerprintKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FingerprintKey(id {}, redacted)", self.id())
    }
}

impl Drop for FingerprintKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// The plain SHA-256 content hash that versions before 0.2 wrote into the
/// `secretsync:content-hash` tag. Used only to recognise (and replace) such tags.
pub fn legacy_content_hash(value: &SecretValue) -> String {
    let mut json = value.canonical_json();
    let hash = hex::encode(Sha256::digest(json.as_bytes()));
    json.zeroize();
    hash
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merge::secret;
    use serde_json::json;

    #[test]
    fn keyed_fingerprints_differ_by_key_and_are_not_the_plain_hash() {
        let v = secret(json!({"password": "hunter2"}));
        let a = FingerprintKey::from_bytes([1; KEY_LEN]);
        let b = FingerprintKey::from_bytes([2; KEY_LEN]);
        assert_eq!(a.fingerprint(&v).len(), 64);
        assert_eq!(a.fingerprint(&v), a.fingerprint(&v.clone()));
        assert_ne!(a.fingerprint(&v), b.fingerprint(&v));
        assert_ne!(a.fingerprint(&v), legacy_content_hash(&v));
        // RFC 4231-style check of the construction: HMAC over the canonical JSON.
        assert_eq!(
            a.fingerprint(&v),
            a.fingerprint_bytes(v.canonical_json().as_bytes())
        );
    }

    #[test]
    fn hex_round_trip_and_debug_redacts() {
        let k = FingerprintKey::from_bytes([7; KEY_LEN]);
        assert_eq!(FingerprintKey::from_hex(&k.to_hex()), Some(k.clone()));
        assert_eq!(FingerprintKey::from_hex("zz"), None);
        assert_eq!(FingerprintKey::from_hex(&"ab".repeat(31)), None);
        let dbg = format!("{k:?}");
        assert!(!dbg.contains(&k.to_hex()) && dbg.contains("redacted"));
        assert_eq!(k.id().len(), 8);
    }

    #[test]
    fn hmac_matches_rfc4231_case_2() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(b"Jefe").unwrap();
        m.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(m.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
