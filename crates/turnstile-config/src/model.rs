//! The validated node configuration: what the rest of the router reads. Built only by the loader
//! in [`crate::load`], so every value here has passed validation.

use std::collections::BTreeMap;
use std::path::PathBuf;

use wamp_proto::{MatchPolicy, Serializer, UriRules};

/// Default `options.max_message_size` of a transport: 1 MiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 1 << 20;

/// A whole node configuration (`version: 2`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    /// `controller.id`: the node's id (for logs), if given.
    pub node_id: Option<String>,
    /// The router workers (`workers[i]` with `"type": "router"`).
    pub workers: Vec<RouterWorker>,
}

/// One router worker: its realms and its listening transports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterWorker {
    /// `id`: the worker's id (for logs), if given.
    pub id: Option<String>,
    /// `options.title`: the worker's title (for logs), if given.
    pub title: Option<String>,
    pub realms: Vec<RealmConfig>,
    pub transports: Vec<TransportConfig>,
}

/// A realm (`workers[i].realms[j]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealmConfig {
    pub name: String,
    pub roles: Vec<RoleConfig>,
    pub options: RealmOptions,
    /// `Some` when the realm has a `stats` section (metering on), even an empty one.
    pub stats: Option<StatsConfig>,
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
    /// to before the broker yields to other work. A positive integer; `None` when not given
    /// (the router picks its own; Crossbar's default is 100).
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

/// A role with static permissions (`realms[j].roles[k]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleConfig {
    pub name: String,
    pub permissions: Vec<Permission>,
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
    pub allow: Allow,
    pub disclose: Disclose,
    pub cache: bool,
}

/// `permissions[n].allow`: every action defaults to false.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Allow {
    pub call: bool,
    pub register: bool,
    pub publish: bool,
    pub subscribe: bool,
}

/// `permissions[n].disclose`: both default to false.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Disclose {
    pub caller: bool,
    pub publisher: bool,
}

/// A realm's `stats` section (see `shared/spec/session-statistics.md` §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatsConfig {
    /// A power of two in [1, 2^30]; default 512.
    pub rated_message_size: u32,
    /// 0 = off.
    pub trigger_after_rated_messages: u64,
    /// Seconds; 0 = off.
    pub trigger_after_duration: u64,
    pub trigger_on_join: bool,
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
        id: Option<String>,
        endpoint: Endpoint,
        path: String,
        service: WebSocketService,
    },
    /// `"type": "web"`: an HTTP server with a tree of path services.
    Web {
        id: Option<String>,
        endpoint: Endpoint,
        paths: BTreeMap<String, WebPath>,
    },
    /// `"type": "rawsocket"`. `max_message_size` is in [512, 16 MiB] (RawSocket lengths are
    /// 2^(9+L) for L in 0..=15).
    RawSocket {
        id: Option<String>,
        endpoint: Endpoint,
        serializers: Vec<Serializer>,
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

    /// The transport's `id`, if given.
    pub fn id(&self) -> Option<&str> {
        match self {
            TransportConfig::WebSocket { id, .. }
            | TransportConfig::Web { id, .. }
            | TransportConfig::RawSocket { id, .. } => id.as_deref(),
        }
    }
}

/// A transport's (or WebSocket service's) `auth` section. Without it (`None` where it is held),
/// Crossbar's default applies: anonymous authentication with authrole `anonymous`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    /// `auth.anonymous` (`"type": "static"`): anonymous sessions get this role. `None`: anonymous
    /// authentication is not offered. (Today the loader only accepts `auth` sections that have
    /// it, so it is always `Some`; other methods come later.)
    pub anonymous: Option<AnonymousAuth>,
}

/// `auth.anonymous` with `"type": "static"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnonymousAuth {
    /// `role`, default `anonymous`.
    pub role: String,
    /// `authid`: the authid given to anonymous sessions; `None`: the router generates one.
    pub authid: Option<String>,
}

/// A listening endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Tcp {
        port: u16,
        /// `interface`: the address to bind (validated to parse as an IP address of `version`);
        /// default all interfaces of `version`.
        interface: Option<String>,
        /// `version`: 4 or 6; default: the family of `interface` if given, else 4.
        version: u8,
        /// `backlog`, default 1024.
        backlog: u32,
    },
    /// `path` resolved against the configuration file's directory.
    Unix { path: PathBuf },
}

/// A WebSocket service (`websocket` transport, or a `web` path of type `websocket`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSocketService {
    /// Offered serializers in order of preference; default all three.
    pub serializers: Vec<Serializer>,
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebPath {
    WebSocket(WebSocketService),
    /// Serve a directory (resolved against the configuration file's directory).
    Static {
        directory: PathBuf,
    },
}
