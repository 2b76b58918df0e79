//! The validated node configuration: what the rest of the router reads. Built only by the loader
//! in [`crate::load`], so every value here has passed validation.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use wamp_proto::{MatchPolicy, Serializer, UriRules};

use crate::ciphers::TlsCiphers;
#[cfg(doc)]
use crate::ciphers::TlsSuite;

/// Default `options.max_message_size` of a transport: 1 MiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 1 << 20;

/// A whole node configuration (`version: 2`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    /// `controller.id`: the node's id (for logs), if given.
    pub node_id: Option<String>,
    /// `controller.options.title`: the node's title (for logs), if given.
    pub node_title: Option<String>,
    /// The router workers (`workers[i]` with `"type": "router"`).
    pub workers: Vec<RouterWorker>,
    /// Crossbar keys that were accepted but do nothing in Turnstile, in the order the validator
    /// met them. The router logs each once at start, with its reason, so that nothing accepted
    /// goes unsaid.
    pub inapplicable: Vec<Inapplicable>,
}

/// A key of the configuration that is accepted (so that Crossbar configurations load
/// unchanged) but has no effect in Turnstile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inapplicable {
    /// The path to the key, e.g. `workers[0].options.reactor`.
    pub at: String,
    /// Why it does not apply, e.g. "Turnstile has no Twisted reactor to choose".
    pub reason: String,
}

/// One router worker: its realms and its listening transports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterWorker {
    /// `id`: the worker's id (for logs), if given.
    pub id: Option<String>,
    /// `options.title`: the worker's title (for logs), if given.
    pub title: Option<String>,
    /// `realms`: the realms the worker hosts (possibly none).
    pub realms: Vec<RealmConfig>,
    /// `transports`: the listening transports clients connect through.
    pub transports: Vec<TransportConfig>,
    /// `limits` (a Turnstile extension): the worker's connection limits and the per-session
    /// defaults of its realms.
    pub limits: WorkerLimits,
    /// `ledger` (a Turnstile extension): the usage ledger, where every statistics cycle of
    /// every metered realm of the node is stored. Node-wide: the loader accepts it in one
    /// router worker only; see [`NodeConfig::ledger`].
    pub ledger: Option<LedgerConfig>,
}

/// `workers[i].ledger`, a Turnstile extension: the database that stores one row per closed
/// statistics cycle (the figures of `wamp.session.on_stats`), for `turnstile usage` and
/// billing. See `docs/ledger.md`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerConfig {
    /// `type` and its keys: where the rows are stored.
    pub store: LedgerStore,
    /// `flush_interval` in seconds (default 1, 0 to 3600): the longest a published cycle waits
    /// before the writer commits it; 0 writes as soon as rows arrive.
    pub flush_interval: Duration,
    /// `buffer` (default [`LedgerConfig::DEFAULT_BUFFER_ROWS`]): rows held in memory while the
    /// database is slow or down; beyond them, rows go to [`LedgerConfig::spill_file`].
    pub buffer_rows: usize,
    /// Where rows wait on disk when the memory buffer is full (replayed when the database is
    /// back): the SQLite file's path with `.spill` appended, or `usage.spill` in the node
    /// directory for PostgreSQL.
    pub spill_file: PathBuf,
}

impl LedgerConfig {
    /// Rows held in memory before they spill to disk, when `buffer` is not given.
    pub const DEFAULT_BUFFER_ROWS: usize = 100_000;
}

/// The database of a usage ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LedgerStore {
    /// `"type": "sqlite"`: an embedded SQLite database file (WAL mode), created if missing.
    Sqlite {
        /// `path` (default `usage.sqlite`), resolved against the configuration file's
        /// directory.
        path: PathBuf,
    },
    /// `"type": "postgresql"`: a PostgreSQL server.
    Postgresql {
        /// `dsn` (required): `postgresql://user:password@host:port/database?...` (it may hold
        /// a password, hence a [`Secret`]).
        dsn: Secret,
    },
}

/// `workers[i].limits`, a Turnstile extension (Crossbar's format has no place for these). Every
/// key is optional: `None` is the router's default, named in `turnstile::limits` (connections,
/// deadlines, queues) and `turnstile_core::limits` (per session), where each says what happens
/// at the limit. Timeouts are given in whole seconds.
///
/// Every key but `session` is node-wide (all workers run in one process, on one set of file
/// descriptors), so the loader accepts them in one router worker only; see
/// [`NodeConfig::connection_limits`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerLimits {
    /// `max_connections`: connections open at once, node-wide. At least 1. The
    /// `--max-connections` option overrides it.
    pub max_connections: Option<usize>,
    /// `max_connections_per_ip`: connections open at once from one IP address. At least 1.
    /// The `--max-connections-per-ip` option overrides it.
    pub max_connections_per_ip: Option<usize>,
    /// `handshake_timeout`: from connecting to WELCOME (the RawSocket opening handshake, the
    /// HELLO and any authentication). 1 to 3600 seconds.
    pub handshake_timeout: Option<Duration>,
    /// `http_request_header_timeout`: for a complete HTTP request head (also the keep-alive idle
    /// timeout). 1 to 3600 seconds.
    pub http_request_header_timeout: Option<Duration>,
    /// `message_completion_timeout`: for a WebSocket message once started. 1 to 3600 seconds.
    pub message_completion_timeout: Option<Duration>,
    /// `frame_completion_timeout`: for a RawSocket frame once its header is in. 1 to 3600
    /// seconds.
    pub frame_completion_timeout: Option<Duration>,
    /// `max_outgoing_queue_bytes`: bytes that may wait in one connection's outgoing queue before
    /// its session is disconnected as a slow consumer. 1 KiB to 1 GiB.
    pub max_outgoing_queue_bytes: Option<usize>,
    /// `session`: per-session limits for every realm of the worker (a realm's own `limits`
    /// override them key by key).
    pub session: SessionLimitsConfig,
}

/// Per-session limits: `workers[i].limits.session` (defaults of the worker's realms) and
/// `realms[j].limits` (the realm's own). A realm's [`RealmConfig::limits`] holds the result:
/// the realm's key if given, else the worker's. `None`: the default named in
/// `turnstile_core::limits`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionLimitsConfig {
    /// `max_subscriptions`: subscriptions one session may hold. At least 1.
    pub max_subscriptions: Option<usize>,
    /// `max_registrations`: registrations one session may hold. At least 1.
    pub max_registrations: Option<usize>,
    /// `max_calls_in_flight`: calls one caller may have unanswered. At least 1.
    pub max_calls_in_flight: Option<usize>,
    /// `max_messages_per_second`: the sustained rate of messages a session may send; 0 = no
    /// limit (the default). At most 1,000,000.
    pub max_messages_per_second: Option<u32>,
    /// `message_burst`: messages a session may send at once above the rate (the token bucket's
    /// size); default: one second's worth. 1 to 1,000,000; only with a rate.
    pub message_burst: Option<u32>,
}

impl WorkerLimits {
    /// Whether any node-wide key (any but `session`) is given.
    pub fn has_node_wide_keys(&self) -> bool {
        let WorkerLimits {
            max_connections,
            max_connections_per_ip,
            handshake_timeout,
            http_request_header_timeout,
            message_completion_timeout,
            frame_completion_timeout,
            max_outgoing_queue_bytes,
            session: _,
        } = self;
        max_connections.is_some()
            || max_connections_per_ip.is_some()
            || handshake_timeout.is_some()
            || http_request_header_timeout.is_some()
            || message_completion_timeout.is_some()
            || frame_completion_timeout.is_some()
            || max_outgoing_queue_bytes.is_some()
    }
}

impl SessionLimitsConfig {
    /// These limits, each key not given here taken from `defaults`.
    pub fn or(self, defaults: SessionLimitsConfig) -> SessionLimitsConfig {
        SessionLimitsConfig {
            max_subscriptions: self.max_subscriptions.or(defaults.max_subscriptions),
            max_registrations: self.max_registrations.or(defaults.max_registrations),
            max_calls_in_flight: self.max_calls_in_flight.or(defaults.max_calls_in_flight),
            max_messages_per_second: self
                .max_messages_per_second
                .or(defaults.max_messages_per_second),
            message_burst: self.message_burst.or(defaults.message_burst),
        }
    }
}

impl NodeConfig {
    /// The node-wide limits: the `limits` of the router worker that gives node-wide keys (the
    /// loader allows one), else none (every key the default).
    pub fn connection_limits(&self) -> WorkerLimits {
        self.workers
            .iter()
            .map(|w| &w.limits)
            .find(|l| l.has_node_wide_keys())
            .cloned()
            .map(|l| WorkerLimits {
                session: SessionLimitsConfig::default(),
                ..l
            })
            .unwrap_or_default()
    }

    /// The node's usage ledger: the `ledger` of the router worker that has one (the loader
    /// allows one).
    pub fn ledger(&self) -> Option<&LedgerConfig> {
        self.workers.iter().find_map(|w| w.ledger.as_ref())
    }

    /// Moves every TCP endpoint of every worker to port 0 on 127.0.0.1 (IP version 4), so that
    /// tests and benchmarks can bind a configuration on ephemeral loopback ports (the bound
    /// addresses are the listeners' local addresses). `backlog` and Unix socket endpoints are
    /// left as they are.
    pub fn on_ephemeral_loopback_ports(&mut self) {
        for transport in self.workers.iter_mut().flat_map(|w| &mut w.transports) {
            let endpoint = match transport {
                TransportConfig::WebSocket { endpoint, .. }
                | TransportConfig::Web { endpoint, .. }
                | TransportConfig::RawSocket { endpoint, .. } => endpoint,
            };
            if let Endpoint::Tcp {
                port,
                interface,
                version,
                ..
            } = endpoint
            {
                *port = 0;
                *interface = Some("127.0.0.1".into());
                *version = 4;
            }
        }
    }
}

/// A realm (`workers[i].realms[j]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealmConfig {
    /// `name` (required): the realm's name, a valid WAMP URI such as `realm1`, as clients give
    /// it in HELLO.
    pub name: String,
    /// `roles`: the roles sessions can be authenticated as on this realm; default none.
    pub roles: Vec<RoleConfig>,
    /// `options`: see [`RealmOptions`] for the defaults.
    pub options: RealmOptions,
    /// `Some` when the realm has a `stats` section (metering on), even an empty one.
    pub stats: Option<StatsConfig>,
    /// `store.event-history`: the topics whose events are kept for
    /// `wamp.subscription.get_events`.
    pub event_history: Vec<EventHistoryConfig>,
    /// `limits` (a Turnstile extension): the per-session limits of the realm, its own keys
    /// over its worker's `limits.session`.
    pub limits: SessionLimitsConfig,
}

/// One entry of a realm's `store.event-history`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventHistoryConfig {
    /// `uri` (required): the topic, or topic pattern under `match_policy`.
    pub uri: String,
    /// `match`: `exact` (default), `prefix` or `wildcard`.
    pub match_policy: MatchPolicy,
    /// Events kept, newest last (`limit`, default the store's `limit`, else 100).
    pub limit: usize,
}

/// `realms[j].options`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealmOptions {
    /// `enable_meta_api`, default true.
    pub enable_meta_api: bool,
    /// `uri_check`: `"loose"` (default) or `"strict"`. Also applied to the realm's permission
    /// URIs when the configuration is loaded.
    pub uri_check: UriRules,
    /// `event_dispatching_chunk_size` (Crossbar): how many subscribers an event is dispatched
    /// to before the broker yields to other work. A positive integer; `None` when not given.
    /// Accepted so Crossbar configurations load, but Turnstile delivers a publication in one
    /// step: the server warns at start that it has no effect.
    pub event_dispatching_chunk_size: Option<u32>,
}

impl Default for RealmOptions {
    fn default() -> Self {
        Self {
            enable_meta_api: true,
            uri_check: UriRules::Loose,
            event_dispatching_chunk_size: None,
        }
    }
}

/// A role (`realms[j].roles[k]`): static `permissions`, or a dynamic `authorizer` (exactly one of
/// the two is given in the configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleConfig {
    /// `name` (required): the authrole, such as `anonymous`.
    pub name: String,
    /// The static permissions; empty when the role has an `authorizer`.
    pub permissions: Vec<Permission>,
    /// `authorizer`: the URI of a procedure (on the role's realm) that decides each action of
    /// the role's sessions, called with `(session_details, uri, action, options)`.
    pub authorizer: Option<String>,
}

/// One permission of a role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permission {
    /// The URI or pattern, without stars (see `match_policy`).
    pub uri: String,
    /// `match`. When it is not given, the loader derives it from `uri`:
    /// - `""` or a URI ending with `.` (`"com.example."`): prefix;
    /// - Crossbar's starred form: `"com.example.*"` (one trailing `*`) is prefix on `"com.example."`,
    ///   `"com.*.update"` (other stars) is wildcard on `"com..update"`; the stars are removed;
    /// - anything else: exact.
    pub match_policy: MatchPolicy,
    /// `allow`: which actions on matching URIs are permitted.
    pub allow: Allow,
    /// `disclose`: whether the caller's or publisher's identity is disclosed to callees and
    /// subscribers.
    pub disclose: Disclose,
    /// `cache`, default true: whether a session may keep this permission's decision instead of
    /// checking again.
    pub cache: bool,
}

/// `permissions[n].allow`: every action defaults to false.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Allow {
    /// `call`: may CALL matching procedures.
    pub call: bool,
    /// `register`: may REGISTER matching procedures.
    pub register: bool,
    /// `publish`: may PUBLISH to matching topics.
    pub publish: bool,
    /// `subscribe`: may SUBSCRIBE to matching topics.
    pub subscribe: bool,
}

/// `permissions[n].disclose`: both default to false.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Disclose {
    /// `caller`: INVOCATIONs of matching procedures carry the caller's identity.
    pub caller: bool,
    /// `publisher`: EVENTs of matching topics carry the publisher's identity.
    pub publisher: bool,
}

/// A realm's `stats` section (see `docs/session-statistics.md` §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatsConfig {
    /// `rated_message_size`: the unit of rated messages in bytes (a message counts as its size
    /// divided by this, rounded up); a power of two in [1, 2^30]; default 512.
    pub rated_message_size: u32,
    /// `trigger_after_rated_messages`: a statistics snapshot is published after this many rated
    /// messages in the cycle; 0 = off (default).
    pub trigger_after_rated_messages: u64,
    /// `trigger_after_duration`: a snapshot is published after this many seconds of the cycle;
    /// 0 = off (default).
    pub trigger_after_duration: u64,
    /// `trigger_on_join`, default true: a snapshot is published when the session joins.
    pub trigger_on_join: bool,
    /// `trigger_on_leave`, default true: a final snapshot is published when the session leaves.
    pub trigger_on_leave: bool,
}

impl Default for StatsConfig {
    fn default() -> Self {
        Self {
            rated_message_size: 512,
            trigger_after_rated_messages: 0,
            trigger_after_duration: 0,
            trigger_on_join: true,
            trigger_on_leave: true,
        }
    }
}

/// A listening transport (`workers[i].transports[t]`). Every variant carries `id`, the
/// transport's optional `id` (for logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportConfig {
    /// `"type": "websocket"`: one WebSocket service on its own endpoint, at `path` (from `url`,
    /// default `/`). Any other path gets 404.
    WebSocket {
        /// `id`: the transport's id (for logs), if given.
        id: Option<String>,
        /// `endpoint` (required): where to listen.
        endpoint: Endpoint,
        /// `max_connections` (a Turnstile extension): connections open at once on this
        /// transport; `None`: no cap of its own (the worker's applies).
        max_connections: Option<usize>,
        /// The HTTP path of the WebSocket service, from `url` (`ws://host:port/path`); default `/`.
        path: String,
        /// `serializers`, `options` and `auth` of the WebSocket service.
        service: WebSocketService,
    },
    /// `"type": "web"`: an HTTP server with a tree of path services.
    Web {
        /// `id`: the transport's id (for logs), if given.
        id: Option<String>,
        /// `endpoint` (required): where to listen.
        endpoint: Endpoint,
        /// `max_connections` (a Turnstile extension): connections open at once on this
        /// transport; `None`: no cap of its own (the worker's applies).
        max_connections: Option<usize>,
        /// `paths` (required, not empty): the path services by key (`"/"` or one segment).
        paths: BTreeMap<String, WebPath>,
        /// `options.hsts` (default false) with `options.hsts_max_age` (default 31536000, one
        /// year): every response carries `Strict-Transport-Security: max-age=N`. `None`: off.
        hsts_max_age: Option<u64>,
    },
    /// `"type": "rawsocket"`. `max_message_size` is in [512, 16 MiB] (RawSocket lengths are
    /// 2^(9+L) for L in 0..=15).
    RawSocket {
        /// `id`: the transport's id (for logs), if given.
        id: Option<String>,
        /// `endpoint` (required): where to listen.
        endpoint: Endpoint,
        /// `max_connections` (a Turnstile extension): connections open at once on this
        /// transport; `None`: no cap of its own (the worker's applies).
        max_connections: Option<usize>,
        /// `serializers`: the serializers a client may ask for in the handshake; default all three.
        serializers: Vec<Serializer>,
        /// `max_message_size` (or `options.max_message_size`, not both) in bytes: the largest
        /// message accepted; default 1 MiB.
        max_message_size: usize,
        /// `auth`; `None`: Crossbar's default, anonymous with authrole `anonymous`.
        auth: Option<AuthConfig>,
    },
}

impl TransportConfig {
    /// The listening endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        match self {
            TransportConfig::WebSocket { endpoint, .. }
            | TransportConfig::Web { endpoint, .. }
            | TransportConfig::RawSocket { endpoint, .. } => endpoint,
        }
    }

    /// The transport's own connection cap (`max_connections`), if given.
    pub fn max_connections(&self) -> Option<usize> {
        match self {
            TransportConfig::WebSocket {
                max_connections, ..
            }
            | TransportConfig::Web {
                max_connections, ..
            }
            | TransportConfig::RawSocket {
                max_connections, ..
            } => *max_connections,
        }
    }

    /// The transport's `id`, if given.
    pub fn id(&self) -> Option<&str> {
        match self {
            TransportConfig::WebSocket { id, .. }
            | TransportConfig::Web { id, .. }
            | TransportConfig::RawSocket { id, .. } => id.as_deref(),
        }
    }
}

/// A transport's (or WebSocket service's) `auth` section: the authentication methods it offers,
/// each `static` (principals from the configuration) or `dynamic` (a procedure decides). A client
/// gets the first of its HELLO `authmethods` that is offered here. Without the section (`None`
/// where it is held), Crossbar's default applies: anonymous authentication with authrole
/// `anonymous`. The loader accepts only sections with at least one method.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthConfig {
    /// `auth.anonymous` with `"type": "static"`.
    pub anonymous: Option<AnonymousAuth>,
    /// `auth.anonymous` with `"type": "dynamic"`: the authenticator decides the role (and may set
    /// the authid). At most one of `anonymous` and `anonymous_dynamic` is set.
    pub anonymous_dynamic: Option<DynamicAuth>,
    /// `auth.ticket`.
    pub ticket: Option<TicketAuth>,
    /// `auth.wampcra`.
    pub wampcra: Option<WampCraAuth>,
    /// `auth.cryptosign`.
    pub cryptosign: Option<CryptosignAuth>,
    /// `auth.tls`: the client's TLS certificate (only on TLS endpoints with `ca_certificates`).
    pub tls: Option<TlsAuth>,
}

/// `auth.tls`: authentication by the client certificate of the TLS connection (verified against
/// the endpoint's `ca_certificates` in the TLS handshake).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsAuth {
    /// `"type": "static"`: `principals` by authid, each naming its certificate by SHA-1
    /// fingerprint (at least one; no two with the same certificate).
    Static {
        /// `principals`: the principals by authid.
        principals: BTreeMap<String, TlsPrincipal>,
    },
    /// `"type": "dynamic"`: the authenticator gets the certificate's details in
    /// `details.transport.peer_cert` and returns the role (and optionally the authid).
    Dynamic(DynamicAuth),
}

/// `auth.tls.principals[authid]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsPrincipal {
    /// `certificate-sha1`: the SHA-1 fingerprint of the client certificate, normalized to
    /// upper-case hex pairs joined by colons (`AB:CD:...`), as Crossbar reports fingerprints.
    pub certificate_sha1: String,
    /// `role`: the authrole of the principal's sessions.
    pub role: String,
    /// `realm`: if given, the only realm the principal may join.
    pub realm: Option<String>,
}

/// `auth.anonymous` with `"type": "static"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnonymousAuth {
    /// `role`, default `anonymous`.
    pub role: String,
    /// `authid`: the authid given to anonymous sessions; `None`: the router generates one.
    pub authid: Option<String>,
}

/// A method with `"type": "dynamic"`: `authenticator` is the URI of a procedure registered by a
/// component, called with `(realm, authid, details)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynamicAuth {
    /// `authenticator`: the procedure URI.
    pub authenticator: String,
    /// `authenticator-realm`: the realm the procedure is registered on; `None`: the realm the
    /// client asks to join.
    pub authenticator_realm: Option<String>,
}

/// `auth.ticket`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TicketAuth {
    /// `"type": "static"`: `principals`, by authid (at least one).
    Static {
        /// `principals`: the principals by authid.
        principals: BTreeMap<String, TicketPrincipal>,
    },
    /// `"type": "dynamic"`: the authenticator gets the ticket in `details.ticket`.
    Dynamic(DynamicAuth),
}

/// `auth.ticket.principals[authid]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketPrincipal {
    /// `ticket`: what the client must send in AUTHENTICATE.
    pub ticket: Secret,
    /// `role`: the authrole of the principal's sessions.
    pub role: String,
    /// `realm`: if given, the only realm the principal may join.
    pub realm: Option<String>,
}

/// `auth.wampcra`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WampCraAuth {
    /// `"type": "static"`: `users`, by authid (at least one).
    Static {
        /// `users`: the users by authid.
        users: BTreeMap<String, WampCraUser>,
    },
    /// `"type": "dynamic"`: the authenticator returns the user's `secret` and `role` (and
    /// `salt`, `iterations`, `keylen` for salted secrets).
    Dynamic(DynamicAuth),
}

/// `auth.wampcra.users[authid]`. Built with [`WampCraUser::new`], which derives the key, so the
/// secret, the salt and the key always agree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WampCraUser {
    /// `secret`: the user's secret (password) as configured.
    secret: Secret,
    /// The HMAC-SHA256 key: `secret`, or the key derived from it with `salt`.
    key: Secret,
    /// `role`: the authrole of the user's sessions.
    pub role: String,
    /// `realm`: if given, the only realm the user may join.
    pub realm: Option<String>,
    /// `salt`, `iterations` and `keylen` (all three or none, as Crossbar uses them).
    salt: Option<CraSalt>,
}

impl WampCraUser {
    /// A user with `secret` and, for a salted secret, its PBKDF2 parameters. As in Crossbar, the
    /// secret of a salted user is the password itself: the key signatures are checked with is
    /// derived from it here, once (`wamp_proto::wampcra::derive_key`), and the client derives the
    /// same key from the password with the parameters it gets in CHALLENGE.
    pub fn new(secret: Secret, role: String, realm: Option<String>, salt: Option<CraSalt>) -> Self {
        let key = match &salt {
            Some(params) => Secret::new(wamp_proto::wampcra::derive_key(secret.expose(), params)),
            None => secret.clone(),
        };
        WampCraUser {
            secret,
            key,
            role,
            realm,
            salt,
        }
    }

    /// The secret as configured (for a salted user, the password).
    pub fn secret(&self) -> &Secret {
        &self.secret
    }

    /// The HMAC-SHA256 key of the user's signatures: the secret, or the key derived from it.
    pub fn key(&self) -> &Secret {
        &self.key
    }

    /// The PBKDF2 parameters, sent in CHALLENGE.Extra; `None` for a plain secret.
    pub fn salt(&self) -> Option<&CraSalt> {
        self.salt.as_ref()
    }
}

/// The PBKDF2 parameters of a salted WAMP-CRA secret, sent to the client in CHALLENGE.
pub type CraSalt = wamp_proto::wampcra::SaltParams;

/// `auth.cryptosign`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CryptosignAuth {
    /// `"type": "static"`: `principals`, by authid (at least one).
    Static {
        /// `principals`: the principals by authid.
        principals: BTreeMap<String, CryptosignPrincipal>,
    },
    /// `"type": "dynamic"`: the authenticator gets the client's `authextra` (with `pubkey`) and
    /// returns the role (and optionally the `pubkey` to verify against).
    Dynamic(DynamicAuth),
}

/// `auth.cryptosign.principals[authid]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CryptosignPrincipal {
    /// `authorized_keys`: Ed25519 public keys, 64 hex characters each, stored in lower case. At
    /// least one.
    pub authorized_keys: Vec<String>,
    /// `role`: the authrole of the principal's sessions.
    pub role: String,
    /// `realm`: if given, the only realm the principal may join.
    pub realm: Option<String>,
}

/// A secret from the configuration (a ticket, a WAMP-CRA secret). `Debug` does not show it; read
/// it with [`Secret::expose`]. `==` is for comparing configurations only: compare credentials in
/// constant time.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret (a ticket or WAMP-CRA secret).
    pub fn new(secret: impl Into<String>) -> Self {
        Secret(secret.into())
    }

    /// The secret itself. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// A listening endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `"type": "tcp"`: a TCP listener.
    Tcp {
        /// `port` (required): the TCP port, 1 to 65535 (0 only after
        /// [`NodeConfig::on_ephemeral_loopback_ports`]).
        port: u16,
        /// `interface`: the address to bind: an IP address (of `version`), or a host name,
        /// resolved when the router starts (an address of `version` if it has one); default all
        /// interfaces of `version`.
        interface: Option<String>,
        /// `version`: 4 or 6; default: the family of `interface` if given, else 4.
        version: u8,
        /// `backlog`, default 1024.
        backlog: u32,
        /// `tls`: serve TLS on this endpoint (`None`: plain TCP).
        tls: Option<TlsConfig>,
    },
    /// `path` resolved against the configuration file's directory.
    Unix {
        /// `path` (required): the socket file.
        path: PathBuf,
        /// `backlog`, default 1024.
        backlog: u32,
    },
}

/// `tls` of a TCP endpoint (Crossbar's keys). Paths are resolved against the configuration
/// file's directory (Crossbar's node directory); the files are read when the router starts,
/// before anything listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// `key` (required): the server's private key (PEM: PKCS#8, PKCS#1 RSA or SEC1 EC).
    pub key: PathBuf,
    /// `certificate` (required): the server's certificate (PEM; the first certificate in the
    /// file is the server's, any further ones are sent as its chain).
    pub certificate: PathBuf,
    /// `chain_certificates`: intermediate certificates sent after the server's (PEM files).
    pub chain_certificates: Vec<PathBuf>,
    /// `ca_certificates`: when given (not empty), clients must present a certificate issued by
    /// one of these CAs (as Crossbar: verification on, a certificate required).
    pub ca_certificates: Vec<PathBuf>,
    /// `ciphers`: an OpenSSL cipher string, read into rustls' suites; `None`: rustls' defaults
    /// (every suite of [`TlsSuite::ALL`]).
    pub ciphers: Option<TlsCiphers>,
    /// `dhparam`: accepted for Crossbar configurations, without effect (rustls has only
    /// ephemeral elliptic-curve key exchange, which takes no DH parameters); logged at start.
    pub dhparam: Option<PathBuf>,
}

impl TlsConfig {
    /// Whether clients must present a certificate (`ca_certificates` given).
    pub fn client_certificates(&self) -> bool {
        !self.ca_certificates.is_empty()
    }
}

/// A WebSocket service (`websocket` transport, or a `web` path of type `websocket`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSocketService {
    /// Offered serializers in order of preference; default all three.
    pub serializers: Vec<Serializer>,
    /// `options`: see [`WebSocketOptions`] for the defaults.
    pub options: WebSocketOptions,
    /// `auth`; `None`: Crossbar's default, anonymous with authrole `anonymous`.
    pub auth: Option<AuthConfig>,
}

/// `options` of a WebSocket service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSocketOptions {
    /// `max_message_size` in bytes, in [1, 64 MiB]; default 1 MiB.
    pub max_message_size: usize,
    /// `max_frame_size` in bytes, in [1, 64 MiB]; default = max_message_size.
    pub max_frame_size: usize,
    /// `auto_ping_interval` in milliseconds, 0 = off (default).
    pub auto_ping_interval_ms: u64,
    /// `auto_ping_timeout` in milliseconds, 0 = off (default). Non-zero only together with a
    /// non-zero `auto_ping_interval`.
    pub auto_ping_timeout_ms: u64,
}

impl Default for WebSocketOptions {
    fn default() -> Self {
        Self {
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            max_frame_size: DEFAULT_MAX_MESSAGE_SIZE,
            auto_ping_interval_ms: 0,
            auto_ping_timeout_ms: 0,
        }
    }
}

/// A service under a `web` transport's `paths`. The key `"/"` is the root; other keys are one
/// path segment (`"ws"` mounts at `/ws`) matching `[A-Za-z0-9_-]+`. `"/"` cannot be a WebSocket
/// service (as in Crossbar: use a `websocket` transport for that).
// Built once at load and rarely copied: the size difference (the `auth` section) does not matter,
// and boxing would only make matching on it clumsier.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebPath {
    /// `"type": "websocket"`: a WebSocket service at this path.
    WebSocket(WebSocketService),
    /// `"type": "static"`: serve a directory.
    Static {
        /// `directory` (required), resolved against the configuration file's directory.
        directory: PathBuf,
    },
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::{load_str, Format};

    #[test]
    fn on_ephemeral_loopback_ports_moves_every_tcp_endpoint() {
        let text = r#"{"version": 2, "workers": [
            {"type": "router", "transports": [
                {"type": "web", "endpoint": {"type": "tcp", "port": 8080, "backlog": 7},
                 "paths": {"ws": {"type": "websocket"}}},
                {"type": "rawsocket", "endpoint": {"type": "unix", "path": "/run/t.sock"}}]},
            {"type": "router", "transports": [
                {"type": "websocket", "endpoint": {"type": "tcp", "port": 9000,
                 "interface": "::1", "version": 6}},
                {"type": "rawsocket", "endpoint": {"type": "tcp", "port": 9001,
                 "interface": "0.0.0.0"}}]}]}"#;
        let mut config = load_str(text, Format::Json, Path::new("/etc/t/config.json")).unwrap();
        config.on_ephemeral_loopback_ports();
        let endpoints: Vec<&Endpoint> = config
            .workers
            .iter()
            .flat_map(|w| &w.transports)
            .map(TransportConfig::endpoint)
            .collect();
        let loopback = |backlog| Endpoint::Tcp {
            port: 0,
            interface: Some("127.0.0.1".into()),
            version: 4,
            backlog,
            tls: None,
        };
        assert_eq!(
            endpoints,
            [
                &loopback(7),
                &Endpoint::Unix {
                    path: "/run/t.sock".into(),
                    backlog: 1024,
                },
                &loopback(1024),
                &loopback(1024),
            ]
        );
    }
}
