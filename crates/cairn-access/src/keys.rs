//! API key secrets: 192 random bits, hex-encoded behind a recognisable prefix. Because the
//! secret is uniformly random, a fast hash (SHA-256) is safe to store: there is nothing to
//! brute-force from a dictionary, and lookups stay cheap on every request.

use rand::RngCore;
use sha2::{Digest, Sha256};

/// Every Cairn key starts with this, so leaked keys are easy to recognise and scan for.
pub const KEY_PREFIX: &str = "sk-cairn-";

/// A new random key secret.
pub fn generate_secret() -> String {
    let mut bytes = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{KEY_PREFIX}{}", hex::encode(bytes))
}

/// The hex SHA-256 of a secret, the only form in which keys are stored.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// The displayable start of a secret (prefix plus six characters).
pub fn display_prefix(secret: &str) -> String {
    secret.chars().take(KEY_PREFIX.len() + 6).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_unique_and_hashed() {
        let (a, b) = (generate_secret(), generate_secret());
        assert_ne!(a, b);
        assert!(a.starts_with(KEY_PREFIX) && a.len() == KEY_PREFIX.len() + 48);
        assert_eq!(hash_secret(&a), hash_secret(&a));
        assert_ne!(hash_secret(&a), hash_secret(&b));
        assert_eq!(display_prefix(&a).len(), KEY_PREFIX.len() + 6);
    }
}
