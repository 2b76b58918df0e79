//! A WAMP session as the realm keeps it (identity, transport, metering, testaments), and the
//! realm's table of sessions by connection and by session id. What a session owns elsewhere is
//! indexed by its connection there: subscriptions by the broker, registrations by the dealer,
//! calls by [`crate::calls::Calls`].

use std::collections::HashMap;
use std::sync::Arc;

use wamp_proto::{dict, Dict, Id, Value};

use crate::meter::Meter;
use crate::peer::ConnId;
use crate::peer::{ChannelType, Framing, PeerSender, TransportInfo};

/// Where a session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SessionState {
    /// HELLO received; authentication in progress (CHALLENGE sent or an authenticator called).
    Authenticating,
    /// HELLO accepted, WELCOME being sent; `on_join` not yet published. No trigger fires yet, so
    /// that `on_join` is the first event of the session.
    Joining,
    /// WELCOME sent: routing.
    Joined,
    /// The router sent GOODBYE (kill or shutdown) and waits for the client's reply. The session
    /// no longer receives events or invocations.
    Closing,
}

/// Who the session is, as established at join.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    pub authid: String,
    pub authrole: String,
    pub authmethod: String,
    pub authprovider: String,
    pub authextra: Dict,
}

/// A session of a realm.
#[derive(Debug)]
pub(crate) struct Session {
    pub conn: ConnId,
    pub id: Id,
    pub state: SessionState,
    pub peer: PeerSender,
    pub info: Arc<TransportInfo>,
    pub identity: Identity,
    /// `HELLO.Details.roles`: what the client announced.
    pub client_roles: Dict,
    /// Present when the realm meters (it has a `stats` section).
    pub meter: Option<Meter>,
    /// Generation of the live statistics-duration timer (older ones are stale).
    pub stats_timer: u64,
    /// Generation of the live GOODBYE-reply timer.
    pub goodbye_timer: u64,
    /// Set when queueing to the connection failed: the session is ended after the current input.
    pub doomed: bool,
    /// Publications to make when the session ends (`wamp.session.add_testament`).
    pub testaments: Vec<Testament>,
    /// Subscription/registration removal meta events of a detached session, published after
    /// its `on_leave`.
    pub removal_events: Vec<(&'static str, wamp_proto::List)>,
    /// The authentication in progress, while `Authenticating`.
    pub auth: Option<Box<crate::auth::AuthFlow>>,
    /// Messages waiting for a dynamic authorizer's decision on the first of them.
    pub blocked: Option<std::collections::VecDeque<wamp_proto::Message>>,
    /// Authorization decisions that may be reused for this session: a dynamic authorizer's
    /// with `cache: true`, and those of static permissions with `cache: true`.
    pub decision_cache: std::cell::RefCell<crate::auth::dynamic_authorizer::DecisionCache>,
    /// The message rate limit's state, while the realm has one.
    pub rate: Option<Box<crate::realm::rate_limit::SessionRate>>,
    /// Throttles the warnings about this session's refused requests.
    pub limit_warnings: crate::rate::WarnThrottle,
}

/// The sessions of a realm, by connection and by WAMP session id. Only this type changes the
/// two maps, so they cannot disagree.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    by_conn: HashMap<ConnId, Session>,
    by_id: HashMap<Id, ConnId>,
}

impl Sessions {
    /// Adds a session; its connection and id must not have one already.
    pub(crate) fn insert(&mut self, session: Session) {
        self.by_id.insert(session.id, session.conn);
        self.by_conn.insert(session.conn, session);
    }

    /// Removes and returns the session of `conn`.
    pub(crate) fn remove(&mut self, conn: &ConnId) -> Option<Session> {
        let session = self.by_conn.remove(conn)?;
        self.by_id.remove(&session.id);
        Some(session)
    }

    pub(crate) fn get(&self, conn: &ConnId) -> Option<&Session> {
        self.by_conn.get(conn)
    }

    pub(crate) fn get_mut(&mut self, conn: &ConnId) -> Option<&mut Session> {
        self.by_conn.get_mut(conn)
    }

    pub(crate) fn contains_key(&self, conn: &ConnId) -> bool {
        self.by_conn.contains_key(conn)
    }

    /// The connection of the session with WAMP id `id`.
    pub(crate) fn conn_of(&self, id: Id) -> Option<ConnId> {
        self.by_id.get(&id).copied()
    }

    /// The session with WAMP id `id`.
    pub(crate) fn by_id(&self, id: Id) -> Option<&Session> {
        self.by_id.get(&id).and_then(|c| self.by_conn.get(c))
    }

    pub(crate) fn keys(&self) -> impl Iterator<Item = &ConnId> {
        self.by_conn.keys()
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &Session> {
        self.by_conn.values()
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_conn.len()
    }

    /// Entries of both maps (for [`crate::realm::TableSizes`]).
    pub(crate) fn entries(&self) -> usize {
        self.by_conn.len() + self.by_id.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.by_conn.is_empty()
    }
}

/// When a testament is published. Without session resumption a session is detached and
/// destroyed at the same moment, so both scopes publish when it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TestamentScope {
    Destroyed,
    Detached,
}

/// A publication a session asked the router to make on its behalf when it ends.
#[derive(Debug, Clone)]
pub(crate) struct Testament {
    pub topic: String,
    pub args: Option<wamp_proto::List>,
    pub kwargs: Option<Dict>,
    /// PUBLISH options (black/white lists, `disclose_me`).
    pub options: Dict,
    pub scope: TestamentScope,
}

impl Session {
    /// Whether the client announced `feature` for `role` in HELLO.
    pub(crate) fn supports(&self, role: &str, feature: &str) -> bool {
        self.client_roles
            .get(role)
            .and_then(Value::as_dict)
            .and_then(|r| r.get("features"))
            .and_then(Value::as_dict)
            .and_then(|f| f.get(feature))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    /// The `transport` dict of session details.
    pub(crate) fn transport_details(info: &TransportInfo) -> Dict {
        let serializer = info.serializer.name();
        let mut transport = dict! {
            "channel_type" => match info.channel_type {
                ChannelType::Tcp => "tcp",
                ChannelType::Unix => "unix",
                ChannelType::Tls => "tls",
            },
            "channel_framing" => match info.framing {
                Framing::WebSocket => "websocket",
                Framing::RawSocket => "rawsocket",
            },
            "channel_serializer" => serializer,
            "websocket_protocol" => info.serializer.ws_subprotocol(),
            "peer" => info.peer.as_str(),
            "is_secure" => info.channel_type == ChannelType::Tls,
        };
        if let Some(headers) = &info.http_headers {
            let headers: Dict = headers
                .iter()
                .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
                .collect();
            transport.insert("http_headers_received".into(), Value::Dict(headers));
        }
        if info.channel_type == ChannelType::Tls {
            // As Crossbar: the client certificate's details, or null without one.
            let cert = info
                .peer_cert
                .as_deref()
                .map_or(Value::Null, |c| Value::Dict(c.to_dict()));
            transport.insert("peer_cert".into(), cert);
        }
        transport
    }

    /// The session details dict of `wamp.session.on_join` and `wamp.session.get`.
    pub(crate) fn details(&self, realm: &str) -> Dict {
        let serializer = self.info.serializer.name();
        let transport = Self::transport_details(&self.info);
        let id = &self.identity;
        dict! {
            "realm" => realm,
            "session" => self.id,
            "authid" => id.authid.as_str(),
            "authrole" => id.authrole.as_str(),
            "authmethod" => id.authmethod.as_str(),
            "authprovider" => id.authprovider.as_str(),
            "authextra" => Value::Dict(id.authextra.clone()),
            "serializer" => serializer,
            "transport" => Value::Dict(transport),
            "resumed" => false,
            "resumable" => false,
            "resume_token" => Value::Null,
        }
    }
}

/// A random anonymous authid: six groups of four characters `A-Z0-9` joined by `-`.
pub(crate) fn random_authid() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut out = String::with_capacity(29);
    for group in 0..6 {
        if group > 0 {
            out.push('-');
        }
        for _ in 0..4 {
            out.push(ALPHABET[rand::random_range(0..ALPHABET.len())] as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn anonymous_authid_has_six_groups_of_four() {
        let id = super::random_authid();
        let groups: Vec<&str> = id.split('-').collect();
        assert_eq!(groups.len(), 6, "{id}");
        assert!(groups.iter().all(|g| g.len() == 4
            && g.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())));
    }
}
