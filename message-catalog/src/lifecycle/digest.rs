//! The canonical encoding and digest of a movement's state, for reconciliation.

use sha2::{Digest, Sha256};

use super::Movement;

/// The first line of the canonical encoding; it changes whenever the state's shape does.
const VERSION: &[u8] = b"cats-lifecycle-state-v1\n";

impl Movement {
    /// The canonical bytes of this state: the version line `cats-lifecycle-state-v1` then the JSON encoding (struct fields in
    /// declaration order, maps ordered by key, decimals normalised when extracted, times in
    /// RFC 3339 UTC). Every type in the state serialises infallibly, so the JSON part is never
    /// empty.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut bytes = VERSION.to_vec();
        // Serialising plain data with string map keys into a Vec cannot fail.
        if let Ok(json) = serde_json::to_vec(self) {
            bytes.extend_from_slice(&json);
        }
        bytes
    }

    /// SHA-256 of [`Movement::canonical_bytes`]: equal states, equal digests, on every node and
    /// at the hub.
    pub fn digest(&self) -> [u8; 32] {
        Sha256::digest(self.canonical_bytes()).into()
    }

    /// [`Movement::digest`] as lowercase hexadecimal.
    pub fn digest_hex(&self) -> String {
        self.digest().iter().map(|b| format!("{b:02x}")).collect()
    }
}
