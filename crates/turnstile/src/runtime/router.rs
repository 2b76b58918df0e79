//! The router: the realms of one router worker, and the entry point transports use to connect.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use turnstile_config::RouterWorker;

use turnstile_core::peer::TransportInfo;

use crate::limits;
use crate::runtime::connection::Connection;
use crate::runtime::outbox::{peer_channel, PeerReceiver};
use crate::runtime::realm_task::{realm_inbox, spawn_realm, RealmHandle, RealmInput};

/// The realms of a router worker. Shared by every transport; immutable once started, so
/// connecting and routing take no lock.
#[derive(Debug)]
pub(crate) struct Router {
    realms: HashMap<String, RealmHandle>,
    next_conn: AtomicU64,
}

impl Router {
    /// Starts one task per realm of `worker`. Must be called inside a Tokio runtime.
    pub(crate) fn start(worker: &RouterWorker) -> Arc<Router> {
        let mut inboxes = Vec::new();
        let mut realms = HashMap::new();
        for realm in &worker.realms {
            let (handle, inbox) = realm_inbox();
            realms.insert(realm.name.clone(), handle.clone());
            inboxes.push((realm.clone(), handle, inbox));
        }
        let registry = Arc::new(realms.clone());
        for (config, handle, inbox) in inboxes {
            spawn_realm(config, handle, inbox, registry.clone());
        }
        Arc::new(Router {
            realms,
            next_conn: AtomicU64::new(1),
        })
    }

    /// Registers a new connection, whose outgoing queue holds at most `max_queue_bytes`
    /// ([`limits::MAX_OUTGOING_QUEUE_BYTES`] or the server's replacement). The transport feeds
    /// received messages to the returned [`Connection`] and writes what the [`PeerReceiver`]
    /// yields.
    pub(crate) fn connect(
        self: &Arc<Self>,
        info: TransportInfo,
        max_queue_bytes: usize,
    ) -> (Connection, PeerReceiver) {
        let id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let (sender, receiver) = peer_channel(max_queue_bytes);
        (
            Connection::new(id, self.clone(), Arc::new(info), sender),
            receiver,
        )
    }

    pub(crate) fn realm(&self, name: &str) -> Option<&RealmHandle> {
        self.realms.get(name)
    }

    /// Graceful shutdown: every realm sends its sessions GOODBYE `wamp.close.system_shutdown`,
    /// waits (bounded) for the replies, publishes the final statistics and `on_leave`, and closes
    /// the connections. Returns when all realms are done or after the grace period.
    pub(crate) async fn shutdown(&self) {
        let mut waits = Vec::new();
        for realm in self.realms.values() {
            let (done_tx, done_rx) = oneshot::channel();
            if realm
                .tx
                .send(RealmInput::Shutdown { done: done_tx })
                .await
                .is_ok()
            {
                waits.push(done_rx);
            }
        }
        let all = async {
            for w in waits {
                let _ = w.await;
            }
        };
        let _ =
            tokio::time::timeout(limits::SHUTDOWN_GRACE + limits::GOODBYE_REPLY_TIMEOUT, all).await;
    }
}

/// The sending side of a realm's inbox, as used by connections.
pub(crate) type RealmTx = mpsc::Sender<RealmInput>;
