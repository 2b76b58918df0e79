//! The router: the realms of one router worker, and the entry point transports use to connect.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use turnstile_config::{RealmConfig, RouterWorker};

use turnstile_core::peer::TransportInfo;

use crate::ledger::LedgerSink;
use crate::limits;
use crate::runtime::connection::Connection;
use crate::runtime::outbox::{peer_channel, PeerReceiver};
use crate::runtime::realm_task::{
    realm_inbox, spawn_realm, RealmHandle, RealmInput, RealmRegistry,
};
use crate::transport::AuthSlot;

/// The realms of a router worker. Shared by every transport. A connection looks its realm up
/// once, at HELLO, and then holds that realm's inbox, so routing takes no lock; the table
/// changes only when a configuration reload adds or removes a realm.
#[derive(Debug)]
pub(crate) struct Router {
    realms: RealmRegistry,
    next_conn: AtomicU64,
    /// The node's usage ledger, which every realm (also one added by a reload) records into.
    ledger: Option<LedgerSink>,
}

/// What a reload did to the realms of a worker, by realm name.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct RealmsReloaded {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// Realms whose configuration changed (they were handed the new one).
    pub changed: Vec<String>,
}

impl Router {
    /// Starts one task per realm of `worker`, recording usage into `ledger` if there is one.
    /// Must be called inside a Tokio runtime.
    pub(crate) fn start(worker: &RouterWorker, ledger: Option<LedgerSink>) -> Arc<Router> {
        let router = Arc::new(Router {
            realms: RealmRegistry::default(),
            next_conn: AtomicU64::new(1),
            ledger,
        });
        router.add_realms(worker.realms.iter().cloned());
        router
    }

    /// Starts a task for each of `configs`. Every inbox is in the table before any task starts,
    /// so that realms can call each other from the start.
    fn add_realms(&self, configs: impl IntoIterator<Item = RealmConfig>) {
        let mut started = Vec::new();
        {
            let mut realms = self.realms_mut();
            for config in configs {
                let (handle, inbox) = realm_inbox();
                realms.insert(config.name.clone(), handle.clone());
                started.push((config, handle, inbox));
            }
        }
        for (config, handle, inbox) in started {
            let ledger = self.ledger.clone();
            spawn_realm(config, handle, inbox, self.realms.clone(), ledger);
        }
    }

    /// Applies a reload from `old` to `new` (the same worker): realms only in `new` start
    /// serving; realms only in `old` leave the table (no new session can join them) and end
    /// their sessions; realms whose configuration changed are handed the new one.
    pub(crate) async fn reload(&self, old: &RouterWorker, new: &RouterWorker) -> RealmsReloaded {
        let find = |w: &'_ RouterWorker, name: &str| -> Option<RealmConfig> {
            w.realms.iter().find(|r| r.name == name).cloned()
        };
        let mut done = RealmsReloaded::default();
        let mut removed = Vec::new();
        for realm in &old.realms {
            if find(new, &realm.name).is_none() {
                if let Some(handle) = self.realms_mut().remove(&realm.name) {
                    removed.push(handle);
                }
                done.removed.push(realm.name.clone());
            }
        }
        let added: Vec<RealmConfig> = new
            .realms
            .iter()
            .filter(|r| find(old, &r.name).is_none())
            .cloned()
            .collect();
        done.added = added.iter().map(|r| r.name.clone()).collect();
        self.add_realms(added);
        for handle in removed {
            let _ = handle.tx.send(RealmInput::Removed).await;
        }
        for realm in &new.realms {
            let changed = find(old, &realm.name).is_some_and(|before| before != *realm);
            let handle = self.realm(&realm.name);
            if let (true, Some(handle)) = (changed, handle) {
                let config = Box::new(realm.clone());
                let _ = handle.tx.send(RealmInput::Config(config)).await;
                done.changed.push(realm.name.clone());
            }
        }
        done
    }

    fn realms_mut(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, RealmHandle>> {
        // A panic while holding the lock cannot leave the table half-changed (each change is
        // one insert or remove), so a poisoned lock is used as it is.
        self.realms.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a new connection, whose outgoing queue holds at most `max_queue_bytes`
    /// ([`limits::MAX_OUTGOING_QUEUE_BYTES`] or the server's replacement). The transport feeds
    /// received messages to the returned [`Connection`] and writes what the [`PeerReceiver`]
    /// yields. `auth` is the transport's `auth` section, read again at each HELLO.
    pub(crate) fn connect(
        self: &Arc<Self>,
        info: TransportInfo,
        max_queue_bytes: usize,
        auth: AuthSlot,
    ) -> (Connection, PeerReceiver) {
        let id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let (sender, receiver) = peer_channel(max_queue_bytes);
        (
            Connection::new(id, self.clone(), Arc::new(info), auth, sender),
            receiver,
        )
    }

    /// The realm called `name`, if the router serves it.
    pub(crate) fn realm(&self, name: &str) -> Option<RealmHandle> {
        let realms = self.realms.read().unwrap_or_else(|e| e.into_inner());
        realms.get(name).cloned()
    }

    /// Graceful shutdown: every realm sends its sessions GOODBYE `wamp.close.system_shutdown`,
    /// waits (bounded) for the replies, publishes the final statistics and `on_leave`, and closes
    /// the connections. Returns when all realms are done or after the grace period.
    pub(crate) async fn shutdown(&self) {
        let realms: Vec<RealmHandle> = {
            let realms = self.realms.read().unwrap_or_else(|e| e.into_inner());
            realms.values().cloned().collect()
        };
        let mut waits = Vec::new();
        for realm in &realms {
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
