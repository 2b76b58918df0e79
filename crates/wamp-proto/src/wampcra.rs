//! The key derivation of salted WAMP-CRA secrets (WAMP spec, "WAMP-CRA", salted secrets).
//!
//! A WAMP-CRA signature is `base64(HMAC-SHA256(key, challenge))`. For a plain secret the key is
//! the secret's UTF-8 bytes. For a salted one, the router sends `salt`, `iterations` and `keylen`
//! in CHALLENGE.Extra, and both sides use as key the *text* [`derive_key`] gives: the client
//! from the password its user typed, the router from the secret in its configuration (the same
//! password). This is what Autobahn's `derive_key` and Crossbar's `wampcra` authenticator do.
//! It lives here, in the protocol crate, because both the configuration loader (static users,
//! derived once at load) and the router core (secrets a dynamic authenticator returns) need it.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use sha2::Sha256;

/// The largest PBKDF2 iteration count Turnstile derives a key with. Crossbar sets no limit, but
/// the router derives the key itself, so a huge count would stall it (about a second per million
/// iterations); a million is above today's recommendations for PBKDF2-HMAC-SHA256.
pub const MAX_ITERATIONS: u32 = 1_000_000;

/// The largest PBKDF2 key length, in bytes.
pub const MAX_KEYLEN: u32 = 1024;

/// The PBKDF2 parameters of a salted secret, as CHALLENGE.Extra carries them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaltParams {
    /// `salt`: a string; its UTF-8 bytes are the PBKDF2 salt.
    pub salt: String,
    /// `iterations`: 1 to [`MAX_ITERATIONS`].
    pub iterations: u32,
    /// `keylen`: the derived key's length in bytes, 1 to [`MAX_KEYLEN`].
    pub keylen: u32,
}

/// Autobahn's `derive_key(secret, salt, iterations, keylen)`: base64 of
/// PBKDF2-HMAC-SHA256(secret, salt, iterations, keylen bytes). Parameters beyond
/// [`MAX_ITERATIONS`] and [`MAX_KEYLEN`] are clamped to them; callers validate first.
pub fn derive_key(secret: &str, params: &SaltParams) -> String {
    let keylen = params.keylen.clamp(1, MAX_KEYLEN) as usize;
    let iterations = params.iterations.clamp(1, MAX_ITERATIONS);
    let mut key = vec![0u8; keylen];
    pbkdf2::pbkdf2_hmac::<Sha256>(
        secret.as_bytes(),
        params.salt.as_bytes(),
        iterations,
        &mut key,
    );
    BASE64.encode(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(salt: &str, iterations: u32, keylen: u32) -> SaltParams {
        SaltParams {
            salt: salt.into(),
            iterations,
            keylen,
        }
    }

    /// Keys computed with Autobahn|Python 26.10 (`autobahn.wamp.auth.derive_key`).
    #[test]
    fn derive_key_matches_autobahn() {
        assert_eq!(
            derive_key("secret1", &params("salt123", 100, 16)),
            "prq7+YkJ1/KlW1X0YczMHw=="
        );
    }
}
