//! Configuration reload of a running router ([`turnstile::server::ReloadHandle`]), one test per
//! kind of change, with sessions joined throughout: each session stays joined across the reload
//! and its next actions follow the new configuration. The `turnstile reload` command and SIGHUP
//! against the binary are tested in `cli_reload.rs`.

// This file uses only `TempDir` and `load_config` of the shared harness.
#[allow(dead_code)]
mod common;

use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use turnstile::reload::ReloadReport;
use turnstile::server::{ReloadHandle, Server};
use turnstile_client::{Error, Session};
use wamp_proto::{dict, uris, Dict, Serializer};

use common::{load_config, TempDir};

/// A router running in process on a JSON configuration, which tests replace.
struct Node {
    url: String,
    reloads: ReloadHandle,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
    dir: TempDir,
}

impl Node {
    async fn start(config: Value) -> Node {
        let dir = TempDir::new("turnstile-reload-test");
        let server = Server::bind(load_config(&config, dir.path()))
            .await
            .expect("bind");
        let url = format!("ws://{}/ws", server.local_addrs()[0].tcp().unwrap());
        let reloads = server.reload_handle();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = rx.await;
        }));
        Node {
            url,
            reloads,
            stop: Some(tx),
            task,
            dir,
        }
    }

    /// Hands the router `config` (validated, on the same ephemeral ports) and returns its report.
    async fn reload(&self, config: Value) -> ReloadReport {
        self.reloads
            .reload(load_config(&config, self.dir.path()))
            .await
            .expect("the router runs")
    }

    async fn session(&self) -> Session {
        Session::connect(&self.url, Serializer::Json).await.unwrap()
    }

    async fn joined(&self, realm: &str) -> Session {
        let mut s = self.session().await;
        s.join(realm).await.unwrap();
        s
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(15), self.task)
            .await
            .expect("the router stops in time")
            .unwrap()
            .unwrap();
    }
}

/// A node with one `web` transport (`/ws`, with `auth` if given) and `realms`.
fn node_config(realms: Value, auth: Option<Value>) -> Value {
    let mut ws = json!({"type": "websocket"});
    if let Some(auth) = auth {
        ws["auth"] = auth;
    }
    json!({
        "version": 2,
        "workers": [{
            "type": "router",
            "realms": realms,
            "transports": [{
                "type": "web",
                "endpoint": {"type": "tcp", "port": 8080},
                "paths": {"ws": ws}
            }]
        }]
    })
}

/// A realm whose `role` may do `allow` (e.g. `{"publish": true}`) on every URI.
fn realm(name: &str, role: &str, allow: Value) -> Value {
    json!({
        "name": name,
        "roles": [{
            "name": role,
            "permissions": [{"uri": "", "match": "prefix", "allow": allow}]
        }]
    })
}

fn all() -> Value {
    json!({"call": true, "register": true, "publish": true, "subscribe": true})
}

fn ack() -> Dict {
    dict! {"acknowledge" => true}
}

/// The error URI of a failed request.
fn wamp_error<T: std::fmt::Debug>(r: Result<T, Error>) -> String {
    match r {
        Err(Error::Wamp { error, .. }) => error,
        other => panic!("expected a WAMP ERROR, got {other:?}"),
    }
}

fn aborted<T: std::fmt::Debug>(r: Result<T, Error>) -> String {
    match r {
        Err(Error::Aborted { reason, .. }) => reason,
        other => panic!("expected ABORT, got {other:?}"),
    }
}

#[tokio::test]
async fn an_added_realm_serves_at_once() {
    let node = Node::start(node_with_realms(json!([realm(
        "realm1",
        "anonymous",
        all()
    )])))
    .await;
    let mut a = node.joined("realm1").await;
    let mut b = node.session().await;
    assert_eq!(aborted(b.join("realm2").await), uris::NO_SUCH_REALM);

    let report = node
        .reload(node_with_realms(json!([
            realm("realm1", "anonymous", all()),
            realm("realm2", "anonymous", all())
        ])))
        .await;
    assert_eq!(report.realms_added, ["workers[0] realm2"]);
    assert!(report.realms_changed.is_empty() && report.needs_restart.is_empty());

    let mut b = node.joined("realm2").await;
    b.publish("com.t", None, None, ack()).await.unwrap();
    a.publish("com.t", None, None, ack()).await.unwrap();
    node.stop().await;
}

fn node_with_realms(realms: Value) -> Value {
    node_config(realms, None)
}

#[tokio::test]
async fn a_removed_realm_closes_its_sessions_and_no_other() {
    let both = json!([
        realm("realm1", "anonymous", all()),
        realm("realm2", "anonymous", all())
    ]);
    let node = Node::start(node_with_realms(both)).await;
    let mut stays = node.joined("realm1").await;
    let mut goes = node.joined("realm2").await;

    let report = node
        .reload(node_with_realms(json!([realm(
            "realm1",
            "anonymous",
            all()
        )])))
        .await;
    assert_eq!(report.realms_removed, ["workers[0] realm2"]);

    let (reason, details) = goes.wait_goodbye().await.unwrap();
    assert_eq!(reason, uris::CLOSE_REALM);
    let message = details
        .get("message")
        .and_then(|m| m.as_str())
        .unwrap_or("");
    assert!(message.contains("removed"), "{details:?}");
    goes.answer_goodbye().await.unwrap();
    // The same connection cannot join the removed realm again.
    assert_eq!(aborted(goes.join("realm2").await), uris::NO_SUCH_REALM);

    stays.publish("com.t", None, None, ack()).await.unwrap();
    node.stop().await;
}

#[tokio::test]
async fn a_removed_permission_applies_to_the_next_request() {
    let node = Node::start(node_with_realms(json!([realm(
        "realm1",
        "anonymous",
        all()
    )])))
    .await;
    let mut callee = node.joined("realm1").await;
    let mut caller = node.joined("realm1").await;
    let mut subscriber = node.joined("realm1").await;
    callee.register("com.p", Dict::new()).await.unwrap();
    subscriber.subscribe("com.t", Dict::new()).await.unwrap();
    // Allowed (and cached for the session) before the reload.
    caller.publish("com.t", None, None, ack()).await.unwrap();
    subscriber.next_event().await.unwrap();

    let report = node
        .reload(node_with_realms(json!([realm(
            "realm1",
            "anonymous",
            json!({"subscribe": true})
        )])))
        .await;
    assert_eq!(report.realms_changed, ["workers[0] realm1"]);

    let denied = caller.publish("com.t", None, None, ack()).await;
    assert_eq!(wamp_error(denied), uris::NOT_AUTHORIZED);
    let denied = caller.call("com.p", None, None, Dict::new()).await;
    assert_eq!(wamp_error(denied), uris::NOT_AUTHORIZED);
    let denied = callee.register("com.q", Dict::new()).await;
    assert_eq!(wamp_error(denied), uris::NOT_AUTHORIZED);
    // Still joined, still allowed what is left.
    subscriber.subscribe("com.u", Dict::new()).await.unwrap();
    node.stop().await;
}

#[tokio::test]
async fn an_added_permission_applies_to_the_next_request() {
    let node = Node::start(node_with_realms(json!([realm(
        "realm1",
        "anonymous",
        json!({"subscribe": true})
    )])))
    .await;
    let mut a = node.joined("realm1").await;
    let denied = a.publish("com.t", None, None, ack()).await;
    assert_eq!(wamp_error(denied), uris::NOT_AUTHORIZED);
    node.reload(node_with_realms(json!([realm(
        "realm1",
        "anonymous",
        all()
    )])))
    .await;
    a.publish("com.t", None, None, ack()).await.unwrap();
    node.stop().await;
}

/// Static ticket principals: a principal added can join, one removed cannot, and the session
/// the removed principal had stays joined.
#[tokio::test]
async fn ticket_principals_added_and_removed() {
    let auth =
        |principals: Value| Some(json!({"ticket": {"type": "static", "principals": principals}}));
    let realms = json!([realm("realm1", "user", all())]);
    let alice = json!({"alice": {"ticket": "a-secret", "role": "user"}});
    let node = Node::start(node_config(realms.clone(), auth(alice))).await;
    let mut a = node.session().await;
    a.join_with_ticket("realm1", "alice", "a-secret")
        .await
        .unwrap();
    let mut b = node.session().await;
    let refused = b.join_with_ticket("realm1", "bob", "b-secret").await;
    assert_eq!(aborted(refused), uris::AUTHENTICATION_FAILED);

    // A connection opened before the reload, joining after it.
    let mut early = node.session().await;
    let bob = json!({"bob": {"ticket": "b-secret", "role": "user"}});
    let report = node.reload(node_config(realms, auth(bob))).await;
    assert_eq!(
        report.auth_replaced,
        ["workers[0].transports[0].paths.ws.auth"]
    );
    assert!(report.realms_changed.is_empty() && report.needs_restart.is_empty());

    let mut b = node.session().await;
    b.join_with_ticket("realm1", "bob", "b-secret")
        .await
        .unwrap();
    early
        .join_with_ticket("realm1", "bob", "b-secret")
        .await
        .unwrap();
    let mut again = node.session().await;
    let refused = again.join_with_ticket("realm1", "alice", "a-secret").await;
    assert_eq!(aborted(refused), uris::AUTHENTICATION_FAILED);
    // Alice's session, authenticated before, goes on.
    a.publish("com.t", None, None, ack()).await.unwrap();
    node.stop().await;
}

/// New `stats` settings: a duration trigger switched on reaches a session joined before (its
/// cycle is closed at the reload, then one per period).
#[tokio::test]
async fn stats_settings_apply_to_joined_sessions() {
    let metered = |stats: Value| {
        let mut r = realm("realm1", "anonymous", all());
        r["stats"] = stats;
        node_with_realms(json!([r]))
    };
    let node = Node::start(metered(json!({"trigger_on_join": false}))).await;
    let mut monitor = node.joined("realm1").await;
    monitor
        .subscribe("wamp.session.on_stats", Dict::new())
        .await
        .unwrap();
    let a = node.joined("realm1").await;
    let a_id = a.id().unwrap();
    let quiet = monitor
        .try_next_event(Duration::from_millis(1500))
        .await
        .unwrap();
    assert!(quiet.is_none(), "no trigger yet: {quiet:?}");

    node.reload(metered(
        json!({"trigger_on_join": false, "trigger_after_duration": 1}),
    ))
    .await;
    // For `a`: the cycle closed at the reload, then the one-second trigger.
    let mut cycles = Vec::new();
    while cycles.len() < 2 {
        let event = tokio::time::timeout(Duration::from_secs(5), monitor.next_event())
            .await
            .expect("on_stats in time")
            .unwrap();
        let info = event.args[0].as_dict().unwrap();
        if info["session"].as_u64() == Some(a_id) {
            cycles.push(event.args[1].as_dict().unwrap().clone());
        }
    }
    assert_eq!(cycles[0]["cycle"].as_u64(), Some(1));
    assert_eq!(cycles[1]["cycle"].as_u64(), Some(2));
    let second = cycles[1]["duration"].as_u64().unwrap();
    assert!(
        (900_000_000..3_000_000_000).contains(&second),
        "about a second: {second}"
    );
    node.stop().await;
}

/// A changed endpoint and transport options are reported as needing a restart and left as
/// they run (the session stays on the old port), while the realm change of the same reload
/// applies.
#[tokio::test]
async fn transport_changes_are_reported_and_not_applied() {
    let node = Node::start(node_with_realms(json!([realm(
        "realm1",
        "anonymous",
        all()
    )])))
    .await;
    let mut a = node.joined("realm1").await;
    let mut changed = node_with_realms(json!([realm(
        "realm1",
        "anonymous",
        json!({"subscribe": true})
    )]));
    changed["workers"][0]["transports"][0]["endpoint"]["backlog"] = json!(16);
    changed["workers"][0]["transports"][0]["paths"]["ws"]["serializers"] = json!(["cbor"]);
    let report = node.reload(changed.clone()).await;
    let needs_restart = [
        "workers[0].transports[0].endpoint",
        "workers[0].transports[0].paths.ws.serializers",
    ];
    assert_eq!(report.needs_restart, needs_restart);
    assert_eq!(report.realms_changed, ["workers[0] realm1"]);
    // Until a restart, every reload says so again (and the realm has nothing more to change).
    let again = node.reload(changed).await;
    assert_eq!(again.needs_restart, needs_restart);
    assert!(again.realms_changed.is_empty());
    // JSON is still served on the same port; the permission change applied.
    let mut b = node.joined("realm1").await;
    let denied = b.publish("com.t", None, None, ack()).await;
    assert_eq!(wamp_error(denied), uris::NOT_AUTHORIZED);
    let denied = a.publish("com.t", None, None, ack()).await;
    assert_eq!(wamp_error(denied), uris::NOT_AUTHORIZED);
    node.stop().await;
}
