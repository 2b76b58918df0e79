//! WAMP-Cryptosign (Ed25519), as Crossbar.io and Autobahn do it.
//!
//! - HELLO.Details.authextra carries the client's public key, `pubkey`: 64 hex characters.
//! - CHALLENGE.Extra is `{"challenge": hex(32 random bytes), "channel_binding": null}`.
//! - AUTHENTICATE's signature is 192 hex characters: the 64-byte Ed25519 signature followed by
//!   the 32 bytes that were signed (Autobahn's `sign_challenge`: `signature_hex + data_hex`).
//!   Without channel binding the signed bytes are the challenge itself; with `tls-unique` they
//!   would be the challenge XOR the TLS channel id, which needs TLS (refused until it exists).

use ed25519_dalek::{Signature, VerifyingKey};
use subtle::ConstantTimeEq;

/// Bytes in a challenge.
pub(crate) const CHALLENGE_BYTES: usize = 32;

/// A public key from its 64 hex characters (either case), if it is a valid Ed25519 point.
pub(crate) fn parse_public_key(hex_key: &str) -> Option<VerifyingKey> {
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(hex_key, &mut bytes).ok()?;
    VerifyingKey::from_bytes(&bytes).ok()
}

/// Whether `signature` (AUTHENTICATE's, hex of signature || signed message) is `key`'s valid
/// signature of `challenge`. Uses strict verification (as libsodium, which Crossbar uses).
pub(crate) fn verify(
    key: &VerifyingKey,
    challenge: &[u8; CHALLENGE_BYTES],
    signature: &str,
) -> bool {
    let mut bytes = [0u8; 64 + CHALLENGE_BYTES];
    if hex::decode_to_slice(signature.trim(), &mut bytes).is_err() {
        return false;
    }
    let (sig, signed) = bytes.split_at(64);
    if !bool::from(signed.ct_eq(challenge)) {
        return false;
    }
    let Ok(sig) = Signature::from_slice(sig) else {
        return false;
    };
    key.verify_strict(challenge, &sig).is_ok()
}
