//! The validated node configuration: what the rest of the router reads. Built only by the loader
//! in [`crate::load`], so every value here has passed validation.

use std::collections::BTreeMap;
use std::path::PathBuf;

use wamp_proto::{MatchPolicy, Serializer, UriRules};

/// Default `options.max_message_size` of a transport: 1 MiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 1 << 20;

/// A whole node configuration (`version: 2`).
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The router workers (`workers[i]` with `"type": "router"`).
    pub workers: Vec<RouterWorker>,
}

/// One router worker: its realms and its listening transports.
#[derive(Debug, Clone)]
pub struct RouterWorker {
    pub realms: Vec<RealmConfig>,
    pub transports: Vec<TransportConfig>,
}

/// A realm (`workers[i].realms[j]`).
#[derive(Debug, Clone)]
pub struct RealmConfig {
    pub name: String,
    pub roles: Vec<RoleConfig>,
    pub options: RealmOptions,
    /// `Some` when the realm has a `stats` section (metering on), even an empty one.
    pub stats: Option<StatsConfig>,
}

/// `realms[j].options`.
#[derive(Debug, Clone)]
pub struct RealmOptions {
    /// `enable_meta_api`, default true.
    pub enable_meta_api: bool,
    /// `uri_check`: `"loose"` (default) or `"strict"`.
    pub uri_check: UriRules,
}

impl Default for RealmOptions {
    fn default() -> Self {
        Self { enable_meta_api: true, uri_check: UriRules::Loose }
    }
}

/// A role with static permissions (`realms[j].roles[k]`).
#[derive(Debug, Clone)]
pub struct RoleConfig {
    pub name: String,
    pub permissions: Vec<Permission>,
}

/// One permission of a role.
#[derive(Debug, Clone)]
pub struct Permission {
    pub uri: String,
    /// `match`, default `exact`... except Crossbar's default for `""` is prefix; the loader sets it.
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

/// A listening transport (`workers[i].transports[t]`).
#[derive(Debug, Clone)]
pub enum TransportConfig {
    /// `"type": "websocket"`: one WebSocket service on its own endpoint, at `path` (from `url`,
    /// default `/`). Any other path gets 404.
    WebSocket { endpoint: Endpoint, path: String, service: WebSocketService },
    /// `"type": "web"`: an HTTP server with a tree of path services.
    Web { endpoint: Endpoint, paths: BTreeMap<String, WebPath> },
    /// `"type": "rawsocket"`.
    RawSocket { endpoint: Endpoint, serializers: Vec<Serializer>, max_message_size: usize },
}

/// A listening endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Tcp {
        port: u16,
        /// `interface`: the address to bind; default all interfaces of `version`.
        interface: Option<String>,
        /// `version`: 4 (default) or 6.
        version: u8,
        /// `backlog`, default 1024.
        backlog: u32,
    },
    /// `path` resolved against the configuration file's directory.
    Unix { path: PathBuf },
}

/// A WebSocket service (`websocket` transport, or a `web` path of type `websocket`).
#[derive(Debug, Clone)]
pub struct WebSocketService {
    /// Offered serializers in order of preference; default all three.
    pub serializers: Vec<Serializer>,
    pub options: WebSocketOptions,
}

/// `options` of a WebSocket service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSocketOptions {
    /// `max_message_size` in bytes, default 1 MiB.
    pub max_message_size: usize,
    /// `max_frame_size` in bytes, default = max_message_size.
    pub max_frame_size: usize,
    /// `auto_ping_interval` in milliseconds, 0 = off (default).
    pub auto_ping_interval_ms: u64,
    /// `auto_ping_timeout` in milliseconds, 0 = off (default).
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
/// path segment (`"ws"` mounts at `/ws`).
#[derive(Debug, Clone)]
pub enum WebPath {
    WebSocket(WebSocketService),
    /// Serve a directory (resolved against the configuration file's directory).
    Static { directory: PathBuf },
}
