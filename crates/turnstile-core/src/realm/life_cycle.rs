//! A session's life cycle in the realm ([`SessionState`]): authentication and WELCOME, joining,
//! GOODBYE from either side, protocol violations, and leaving (removal from every part, final
//! statistics, `on_leave`, testaments). The `handle_*` inputs that drive it are in `mod.rs`.

use super::*;
use crate::timer::TimerKey;

impl Realm {
    /// Carries out what the authentication of `conn` asks for next.
    pub(super) fn carry_out(&mut self, conn: ConnId, action: AuthAction) {
        match action {
            AuthAction::Welcome(identity) => self.welcome(conn, identity),
            AuthAction::Challenge { authmethod, extra } => {
                self.send(conn, &Message::Challenge { authmethod, extra });
            }
            AuthAction::CallAuthenticator {
                procedure,
                realm,
                args,
            } => {
                let Some(s) = self.sessions.get(&conn) else {
                    return;
                };
                self.effects.push_back(Effect::Call {
                    realm,
                    procedure,
                    args,
                    purpose: CallPurpose::Authenticate {
                        conn,
                        session: s.id,
                    },
                });
            }
            AuthAction::Refuse { reason, message } => self.refuse(conn, reason, &message),
        }
    }

    /// ABORT to a session still authenticating; it never joined, so no meta events follow.
    pub(super) fn refuse(&mut self, conn: ConnId, reason: &str, message: &str) {
        let Some(s) = self.sessions.get(&conn) else {
            return;
        };
        debug!(peer = %s.info.peer, reason, message, "session refused");
        self.send(conn, &Message::abort(reason, message));
        if let Some(s) = self.remove_session(conn) {
            s.peer.close(CloseReason::policy(close_text(message)));
        }
    }

    /// Authentication succeeded: WELCOME, then what follows a join.
    pub(super) fn welcome(&mut self, conn: ConnId, identity: Identity) {
        if !self.roles.has_role(&identity.authrole) {
            let text = format!(
                "role \"{}\" does not exist on realm \"{}\"",
                identity.authrole, self.name
            );
            return self.refuse(conn, uris::NO_SUCH_ROLE, &text);
        }
        let Some(s) = self.sessions.get_mut(&conn) else {
            return;
        };
        s.identity = identity;
        s.auth = None;
        s.state = SessionState::Joining;
        let id = s.id;
        let mut welcome = dict! {
            "realm" => self.name.as_str(),
            "authid" => s.identity.authid.as_str(),
            "authrole" => s.identity.authrole.as_str(),
            "authmethod" => s.identity.authmethod.as_str(),
            "authprovider" => s.identity.authprovider.as_str(),
            "authextra" => Value::Dict(s.identity.authextra.clone()),
        };
        welcome.insert("roles".into(), self.welcome_roles.clone());
        self.send(
            conn,
            &Message::Welcome {
                session: id,
                details: welcome,
            },
        );
        self.after_join(conn);
    }

    /// A message while authenticating: only AUTHENTICATE (or ABORT) is expected.
    pub(super) fn on_handshake_message(&mut self, conn: ConnId, msg: Message) {
        match msg {
            Message::Authenticate { signature, extra } => {
                let Some(flow) = self.sessions.get_mut(&conn).and_then(|s| s.auth.as_mut()) else {
                    return;
                };
                let action = flow.handle_authenticate(&signature, &extra);
                self.carry_out(conn, action);
            }
            Message::Abort { .. } => {
                if let Some(s) = self.remove_session(conn) {
                    s.peer
                        .close(CloseReason::normal("handshake aborted by the client"));
                }
            }
            other => {
                let text = format!(
                    "received {} during authentication (expected AUTHENTICATE)",
                    other.name()
                );
                self.refuse(conn, uris::PROTOCOL_VIOLATION, &text);
            }
        }
    }

    /// Whether the session subscribes to any `wamp.session.` meta topic.
    pub(super) fn is_session_monitor(&self, conn: ConnId) -> bool {
        self.broker
            .subscriptions_of(conn)
            .any(|s| s.uri.starts_with("wamp.session."))
    }

    /// At shutdown, once only monitors are left, says GOODBYE to them too.
    pub(super) fn continue_shutdown(&mut self) {
        if !self.shutting_down || self.sessions.keys().any(|c| !self.is_session_monitor(*c)) {
            return;
        }
        let conns: Vec<ConnId> = self
            .sessions
            .values()
            .filter(|s| s.state == SessionState::Joined)
            .map(|s| s.conn)
            .collect();
        let (reason, text) = (self.closing.goodbye_reason(), self.closing.text());
        for conn in conns {
            self.say_goodbye(conn, reason, text);
        }
    }

    /// What follows WELCOME: `on_join`, the join snapshot, the duration timer.
    pub(super) fn after_join(&mut self, conn: ConnId) {
        let Some(s) = self.sessions.get(&conn) else {
            return;
        };
        info!(
            realm = %self.name,
            session = s.id,
            authid = %s.identity.authid,
            authrole = %s.identity.authrole,
            serializer = s.info.serializer.name(),
            peer = %s.info.peer,
            "session joined"
        );
        let details = s.details(&self.name);
        self.publish_meta(
            topic::ON_JOIN,
            vec![Value::Dict(details)],
            CountKind::Checked,
        );
        let Some(s) = self.sessions.get_mut(&conn) else {
            return;
        };
        s.state = SessionState::Joined;
        self.timers.remove(TimerKey::of(conn, TimerKind::Handshake));
        self.start_metering(conn);
    }

    /// Removes the session of `conn` with its deadlines.
    fn remove_session(&mut self, conn: ConnId) -> Option<Session> {
        self.timers.remove_conn(conn);
        self.sessions.remove(&conn)
    }

    /// Sends GOODBYE from the router and waits for the client's reply (bounded).
    pub(super) fn say_goodbye(&mut self, conn: ConnId, reason: &str, message: &str) {
        let Some(s) = self.sessions.get(&conn) else {
            return;
        };
        if s.state != SessionState::Joined {
            return;
        }
        // No more events or invocations for it: it is leaving. Detached before the GOODBYE so
        // that nothing (not even its own statistics) reaches it after the GOODBYE.
        self.detach(conn);
        self.send(
            conn,
            &Message::Goodbye {
                details: dict! {"message" => message},
                reason: reason.into(),
            },
        );
        let Some(s) = self.sessions.get_mut(&conn) else {
            return;
        };
        s.state = SessionState::Closing;
        s.goodbye_timer += 1;
        self.timers.insert(Timer {
            at: self.now + limits::GOODBYE_REPLY_TIMEOUT,
            conn,
            session: s.id,
            kind: TimerKind::GoodbyeReply,
            generation: s.goodbye_timer,
        });
    }

    /// ABORT `wamp.error.protocol_violation` (counted in the session), then the session ends and
    /// the connection closes.
    pub(super) fn protocol_violation(&mut self, conn: ConnId, text: &str) {
        if !self.sessions.contains_key(&conn) {
            return;
        }
        debug!(conn, %text, "protocol violation");
        self.detach(conn);
        self.send(conn, &Message::abort(uris::PROTOCOL_VIOLATION, text));
        let reason = CloseReason::protocol_error(close_text(text));
        self.end_session(conn, EndCause::ProtocolViolation, Some(reason));
    }

    /// Removes the session from every part, each part doing its share: it is detached from its
    /// subscriptions and registrations at once (nothing is routed to it any more), which are
    /// then removed a step at a time (the first step now, see [`limits::CLEANUP_BATCH`]); calls
    /// it is serving fail with `wamp.error.canceled`, calls it made are forgotten. Detaching
    /// twice does nothing more.
    pub(super) fn detach(&mut self, conn: ConnId) {
        let Some(s) = self.sessions.get(&conn) else {
            return;
        };
        let session_id = s.id;
        self.broker.detach(conn, session_id);
        self.rpc.dealer.detach(conn, session_id);
        self.end_calls_of(conn);
        self.clean_up(limits::CLEANUP_BATCH);
    }

    /// One step of the cleanup of sessions that left: removes them from up to `budget`
    /// subscriptions and registrations and announces each removal.
    pub(super) fn clean_up(&mut self, budget: usize) {
        let mut subscriptions = Vec::new();
        let used = self.broker.clean_up(budget, &mut subscriptions);
        let mut registrations = Vec::new();
        self.rpc
            .dealer
            .clean_up(budget.saturating_sub(used), &mut registrations);
        self.announce_removals(&subscriptions, &registrations);
    }

    /// The meta events of removed subscribers (`on_unsubscribe`, `on_delete`; none for `wamp.`
    /// topics) and callees (`on_unregister`, `on_delete`): published at once for a session that
    /// has ended, kept in the session to follow its `on_leave` otherwise. Only events somebody
    /// subscribes to are built, so removing many entries costs no event nobody wants.
    pub(super) fn announce_removals(
        &mut self,
        subscriptions: &[Removal],
        registrations: &[Removal],
    ) {
        if subscriptions.is_empty() && registrations.is_empty() {
            return;
        }
        let listened =
            |realm: &Self, t: &str| realm.options.enable_meta_api && realm.broker.has_match(t);
        let kinds = [
            (
                topic::SUB_ON_UNSUBSCRIBE,
                topic::SUB_ON_DELETE,
                subscriptions,
            ),
            (
                topic::REG_ON_UNREGISTER,
                topic::REG_ON_DELETE,
                registrations,
            ),
        ];
        for (removed_topic, deleted_topic, removals) in kinds {
            let (removed_wanted, deleted_wanted) =
                (listened(self, removed_topic), listened(self, deleted_topic));
            if !removed_wanted && !deleted_wanted {
                continue;
            }
            for r in removals.iter().filter(|r| !r.reserved) {
                let args = vec![Value::from(r.session), Value::from(r.entry)];
                let mut events = Vec::with_capacity(2);
                if removed_wanted {
                    events.push((removed_topic, args.clone()));
                }
                if r.deleted && deleted_wanted {
                    events.push((deleted_topic, args));
                }
                let session = self.sessions.conn_of(r.session);
                if let Some(s) = session.and_then(|c| self.sessions.get_mut(&c)) {
                    s.removal_events.extend(events);
                } else {
                    for (t, args) in events {
                        self.publish_meta(t, args, CountKind::Checked);
                    }
                }
            }
        }
    }

    /// Handles the HELLOs that waited for their connection's previous session to be cleaned up,
    /// once it is.
    pub(super) fn start_deferred_hellos(&mut self) {
        if self.deferred_hellos.is_empty() {
            return;
        }
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.deferred_hellos)
            .into_iter()
            .partition(|h| {
                !self.broker.is_detached(h.conn) && !self.rpc.dealer.is_detached(h.conn)
            });
        self.deferred_hellos = waiting;
        for h in ready {
            let now = self.now;
            self.handle_hello(
                h.conn,
                h.peer,
                h.info,
                h.details,
                h.len,
                h.handshake_deadline,
                now,
            );
        }
    }

    /// Ends a session: it leaves the broker and dealer, its final statistics and `on_leave` are
    /// published, then the removal meta events; `close` closes the connection too.
    pub(super) fn end_session(
        &mut self,
        conn: ConnId,
        cause: EndCause,
        close: Option<CloseReason>,
    ) {
        self.detach(conn);
        let Some(mut s) = self.remove_session(conn) else {
            return;
        };
        let removal_events = std::mem::take(&mut s.removal_events);
        // Without session resumption a session is detached and destroyed at once: the
        // `detached` testaments go first, as the spec orders them.
        let mut testaments = std::mem::take(&mut s.testaments);
        testaments.sort_by_key(|t| t.scope != crate::session::TestamentScope::Detached);
        for t in testaments {
            self.publish_testament(&s, t);
        }
        self.final_stats(&mut s, cause.ledger_name());
        self.publish_meta(topic::ON_LEAVE, vec![Value::from(s.id)], CountKind::Checked);
        for (topic, args) in removal_events {
            self.publish_meta(topic, args, CountKind::Checked);
        }
        if let Some(reason) = close {
            s.peer.close(reason);
        } else if self.shutting_down {
            s.peer.close(CloseReason::going_away(self.closing.text()));
        }
        info!(realm = %self.name, session = s.id, cause = cause.as_str(), "session left");
    }

    /// Ends the sessions whose connection failed during the last input.
    pub(super) fn reap(&mut self) {
        while let Some((conn, cause)) = self.doomed.pop() {
            if self.sessions.contains_key(&conn) {
                self.end_session(conn, cause, None);
            }
        }
        self.continue_shutdown();
    }
}
