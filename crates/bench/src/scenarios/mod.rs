//! The scenarios. Each is a rig (its sessions, set up once) that the driver runs for the
//! warm-up and each measured run.
//!
//! - [`pubsub`]: `pubsub`, `pubsub-ack` and `fanout`: one publisher, one or many subscribers,
//!   every event sequence-checked.
//! - [`rpc`]: `rpc` and `rpc-par`: one caller, one echo callee, every result matched.
//! - [`sessions`]: many idle sessions.
//! - [`baseline`]: no router, a bare TCP ping-pong: the floor of a round trip here.

pub mod baseline;
pub mod pubsub;
pub mod rpc;
pub mod sessions;

use std::time::Duration;

use anyhow::{anyhow, Result};
use wamp_proto::{List, Value};

use crate::conn::{Conn, Target};

/// The payload of every event and call: `[i, "xxxxxxxxxx"]`.
pub fn payload(seq: u64) -> List {
    vec![Value::UInt(seq), Value::Str(PAD.to_owned())]
}

const PAD: &str = "xxxxxxxxxx";

/// The sequence number of a payload built by [`payload`].
pub fn payload_seq(args: &Option<List>) -> Result<u64> {
    match args.as_deref() {
        Some([seq, Value::Str(pad)]) if pad == PAD => seq
            .as_u64()
            .ok_or_else(|| anyhow!("payload {args:?} has no sequence number")),
        _ => Err(anyhow!(
            "unexpected payload {args:?}: expected [sequence, \"{PAD}\"]"
        )),
    }
}

/// How long connecting and joining may take.
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects and joins the realm.
pub async fn open_session(target: &Target, cfg: &crate::Config) -> Result<Conn> {
    let mut conn = Conn::connect(target, cfg.serializer, SETUP_TIMEOUT).await?;
    tokio::time::timeout(SETUP_TIMEOUT, conn.join(&cfg.realm))
        .await
        .map_err(|_| anyhow!("no WELCOME within {SETUP_TIMEOUT:?}"))??;
    Ok(conn)
}

/// Runs `f` for `n` items, at most `batch` at a time, in order; stops at the first error.
pub async fn in_batches<T, F, Fut>(n: usize, batch: usize, mut f: F) -> Result<Vec<T>>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut out = Vec::with_capacity(n);
    let batch = batch.max(1);
    let mut i = 0;
    while i < n {
        let end = (i + batch).min(n);
        let results = futures_util::future::join_all((i..end).map(&mut f)).await;
        for r in results {
            out.push(r?);
        }
        i = end;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trip() {
        assert_eq!(payload_seq(&Some(payload(42))).unwrap(), 42);
        assert!(payload_seq(&None).is_err());
        assert!(payload_seq(&Some(vec![Value::UInt(1)])).is_err());
        assert!(payload_seq(&Some(vec![Value::Str("a".into()), PAD.into()])).is_err());
    }
}
