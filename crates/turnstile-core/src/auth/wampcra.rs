//! WAMP-CRA, as Crossbar.io and Autobahn do it.
//!
//! - The challenge is a JSON text, built as Crossbar's `json.dumps(..., ensure_ascii=False)`
//!   writes it (keys in this order, `", "` and `": "` separators):
//!   `{"authid": ..., "authrole": ..., "authmethod": "wampcra", "authprovider": ..., "session": ...,
//!   "nonce": ..., "timestamp": ...}`, with a 64-character base64 nonce (48 random bytes) and an
//!   ISO 8601 UTC timestamp with milliseconds (`2023-11-14T22:13:20.123Z`).
//! - The client answers `base64(HMAC-SHA256(key, challenge))`, where `key` is the secret's UTF-8
//!   bytes. For a salted user the client first derives the key from its password with
//!   [`derive_key`] (PBKDF2-HMAC-SHA256 with the `salt`, `iterations` and `keylen` sent in
//!   CHALLENGE.Extra, then base64), and the router's configured `secret` *is* that derived key:
//!   the router never runs PBKDF2 itself.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::auth::CraSalt;

type HmacSha256 = Hmac<Sha256>;

/// How many random bytes make the nonce (64 base64 characters, as Crossbar's `newid(64)`).
pub const NONCE_BYTES: usize = 48;

/// The challenge text (see the module docs).
pub fn challenge(
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
        iso8601_millis(now_unix_ns),
    )
}

/// `HMAC-SHA256(secret, challenge)`: what the client's signature must decode to.
pub fn expected_signature(secret: &str, challenge: &str) -> [u8; 32] {
    let mut mac =
        HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(challenge.as_bytes());
    mac.finalize().into_bytes().into()
}

/// Whether `signature` (base64, as the client sends it) is `expected`, compared in constant time.
pub fn verify(expected: &[u8; 32], signature: &str) -> bool {
    match BASE64.decode(signature.trim()) {
        Ok(bytes) => bytes.len() == expected.len() && bool::from(bytes.ct_eq(expected)),
        Err(_) => false,
    }
}

/// Autobahn's `derive_key(secret, salt, iterations, keylen)`: base64 of
/// PBKDF2-HMAC-SHA256(secret, salt). What a salted user's `secret` is in the configuration.
pub fn derive_key(secret: &str, salt: &CraSalt) -> String {
    let mut key = vec![0u8; salt.keylen as usize];
    pbkdf2::pbkdf2_hmac::<Sha256>(
        secret.as_bytes(),
        salt.salt.as_bytes(),
        salt.iterations,
        &mut key,
    );
    BASE64.encode(key)
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC) of a Unix time in nanoseconds, as Autobahn's `utcnow()`.
pub fn iso8601_millis(unix_ns: u64) -> String {
    let secs = unix_ns / 1_000_000_000;
    let millis = (unix_ns / 1_000_000) % 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}
