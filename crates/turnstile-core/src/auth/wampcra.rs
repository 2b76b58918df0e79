//! WAMP-CRA, as Crossbar.io and Autobahn do it.
//!
//! - The challenge is a JSON text, built as Crossbar's `json.dumps(..., ensure_ascii=False)`
//!   writes it (keys in this order, `", "` and `": "` separators):
//!   `{"authid": ..., "authrole": ..., "authmethod": "wampcra", "authprovider": ..., "session": ...,
//!   "nonce": ..., "timestamp": ...}`, with a 64-character base64 nonce (48 random bytes) and an
//!   ISO 8601 UTC timestamp with milliseconds (`2023-11-14T22:13:20.123Z`).
//! - The client answers `base64(HMAC-SHA256(key, challenge))`, where `key` is the secret's UTF-8
//!   bytes. For a salted user both sides use as key the text `wamp_proto::wampcra::derive_key`
//!   gives (PBKDF2-HMAC-SHA256 with the `salt`, `iterations` and `keylen` sent in
//!   CHALLENGE.Extra, then base64): the client from its password, the router from the secret
//!   configured (derived once at load) or returned by a dynamic authenticator (derived at each
//!   challenge), as Crossbar does.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use crate::clock::iso8601_from_unix_ns;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// How many random bytes make the nonce (64 base64 characters, as Crossbar's `newid(64)`).
pub(crate) const NONCE_BYTES: usize = 48;

/// The challenge text (see the module docs).
pub(crate) fn challenge(
    authid: &str,
    authrole: &str,
    authprovider: &str,
    session: u64,
    nonce: &[u8; NONCE_BYTES],
    now_unix_ns: u64,
) -> String {
    let json = |s: &str| serde_json::Value::from(s).to_string();
    format!(
        "{{\"authid\": {}, \"authrole\": {}, \"authmethod\": \"wampcra\", \"authprovider\": {}, \
         \"session\": {session}, \"nonce\": \"{}\", \"timestamp\": \"{}\"}}",
        json(authid),
        json(authrole),
        json(authprovider),
        BASE64.encode(nonce),
        // The same format as Autobahn's `utcnow()`.
        iso8601_from_unix_ns(now_unix_ns),
    )
}

/// `HMAC-SHA256(secret, challenge)`: what the client's signature must decode to.
pub(crate) fn expected_signature(secret: &str, challenge: &str) -> [u8; 32] {
    let mut mac =
        HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(challenge.as_bytes());
    mac.finalize().into_bytes().into()
}

/// Whether `signature` (base64, as the client sends it) is `expected`, compared in constant time.
pub(crate) fn verify(expected: &[u8; 32], signature: &str) -> bool {
    match BASE64.decode(signature.trim()) {
        Ok(bytes) => bytes.len() == expected.len() && bool::from(bytes.ct_eq(expected)),
        Err(_) => false,
    }
}
