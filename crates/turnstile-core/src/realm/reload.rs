//! A new configuration for a running realm (a reload: `SIGHUP` or `turnstile reload`), applied
//! to new actions at once without ending a session ([`Realm::handle_config`]), and the end of a
//! realm removed from the configuration ([`Realm::handle_removed`]).
//!
//! What a new [`RealmConfig`] changes:
//! - roles and permissions: the next request of every session is decided by the new ones. The
//!   sessions of a changed or removed role forget their cached decisions, and subscriptions and
//!   registrations their (static) role no longer allows are revoked, so losing a permission
//!   takes effect at once and not only for new requests. A session whose role was removed stays
//!   joined without any permission (nothing is allowed to an unknown role);
//! - `stats`: see [`Realm::reconfigure_stats`];
//! - options, event histories, per-session limits: from the next request or session on.
//!
//! Everything [`Realm::new`] derives from the configuration is taken from a realm built anew
//! from it, destructured field by field, so a field added to [`Realm`] does not compile here
//! until it says whether a reload replaces it.

use std::time::Instant;

use tracing::{info, warn};
use turnstile_config::{RealmConfig, StatsConfig};

use super::*;

impl Realm {
    /// Applies a new configuration of this realm (same name) at `now`. What changed is logged at
    /// info. Ignored once the realm is closing. Session limits set with
    /// [`Realm::set_session_limits`] are replaced by the configuration's, like everything else
    /// the configuration decides.
    pub fn handle_config(&mut self, config: RealmConfig, now: Instant) {
        self.now = now;
        if self.shutting_down {
            return;
        }
        if config.name != self.name {
            warn!(
                realm = %self.name,
                "a configuration for realm \"{}\" was handed to this realm; ignored",
                config.name
            );
            return;
        }
        let Realm {
            // The same realm: same name, clock, sessions and what they hold.
            name: _,
            clock: _,
            now: _,
            sessions: _,
            rpc: _,
            timers: _,
            service_id: _,
            shutting_down: _,
            closing: _,
            doomed: _,
            effects: _,
            // HELLOs waiting for their connection's previous session to be cleaned up.
            deferred_hellos: _,
            // Whether the shell records usage is not the configuration's to change.
            usage: _,
            // What the configuration decides.
            options,
            stats,
            roles,
            broker,
            welcome_roles,
            session_limits,
        } = Realm::new(config, now);

        let mut changes = Vec::new();
        if options != self.options {
            changes.push("options".to_owned());
            self.options = options;
            // Sessions joining from now on are told the new features; those joined were told.
            self.welcome_roles = welcome_roles;
        }
        let histories = broker.into_histories();
        if !same_histories(self.broker.histories(), &histories) {
            changes.push("event history".to_owned());
            self.broker.reconfigure_histories(histories);
        }
        if session_limits != self.session_limits {
            changes.push("session limits".to_owned());
            self.session_limits = session_limits;
        }
        if roles != self.roles {
            changes.push(describe_roles(&self.roles, &roles));
            let old = std::mem::replace(&mut self.roles, roles);
            self.apply_roles(&old);
        }
        if stats != self.stats {
            changes.push(match (self.stats, stats) {
                (None, Some(_)) => "stats on".to_owned(),
                (Some(_), None) => "stats off".to_owned(),
                _ => "stats settings".to_owned(),
            });
            self.reconfigure_stats(stats);
        }
        if changes.is_empty() {
            info!(realm = %self.name, "configuration reloaded: realm unchanged");
        } else {
            info!(realm = %self.name, "configuration reloaded: {}", changes.join("; "));
        }
        self.reap();
    }

    /// The realm was removed from the configuration: every session gets GOODBYE
    /// `wamp.close.close_realm` (session monitors last, as at shutdown) and sessions still
    /// authenticating get ABORT `wamp.error.no_such_realm`. Like a shutdown, the realm is
    /// drained ([`Realm::is_drained`]) once all have left.
    pub fn handle_removed(&mut self, now: Instant) {
        self.now = now;
        let authenticating: Vec<ConnId> = self
            .sessions
            .values()
            .filter(|s| s.state == SessionState::Authenticating)
            .map(|s| s.conn)
            .collect();
        for conn in authenticating {
            let closing = Closing::Removed;
            self.refuse(conn, closing.abort_reason(), closing.text());
        }
        self.close_all(Closing::Removed);
        info!(realm = %self.name, "realm removed from the configuration: closing its sessions");
        self.reap();
    }

    /// After the roles changed from `old`: the sessions of every changed role forget their
    /// cached decisions and lose the subscriptions and registrations they are no longer
    /// allowed. A role with a dynamic authorizer cannot be asked here (the answer takes a
    /// call): its sessions keep what they hold and the authorizer decides their next requests.
    fn apply_roles(&mut self, old: &Roles) {
        let changed: Vec<(ConnId, Id, bool)> = self
            .sessions
            .values()
            .filter(|s| !self.roles.same_role(old, &s.identity.authrole))
            .map(|s| {
                s.decision_cache.borrow_mut().clear();
                let role = &s.identity.authrole;
                let recheck = s.state == SessionState::Joined
                    && self.roles.dynamic_authorizer(role).is_none();
                (s.conn, s.id, recheck)
            })
            .collect();
        for (conn, session, recheck) in changed {
            if recheck {
                self.revoke_unauthorized(conn, session);
            }
        }
    }

    /// Revokes the subscriptions and registrations of `conn` its role no longer allows, each
    /// with the reason `wamp.error.not_authorized` (an UNSUBSCRIBED or UNREGISTERED if the
    /// client announced revocation, and the meta events).
    fn revoke_unauthorized(&mut self, conn: ConnId, session: Id) {
        let Some(s) = self.sessions.get(&conn) else {
            return;
        };
        let role = s.identity.authrole.clone();
        let denied =
            |uri: &str, action| !self.roles.authorize_cacheable(&role, uri, action).0.allow;
        let subscriptions: Vec<(Id, String)> = self
            .broker
            .subscriptions_of(conn)
            .filter(|sub| denied(&sub.uri, Action::Subscribe))
            .map(|sub| (sub.id, sub.uri.clone()))
            .collect();
        let registrations: Vec<(Id, String)> = self
            .rpc
            .dealer
            .iter()
            .filter(|reg| reg.callees.contains(&conn) && denied(&reg.uri, Action::Register))
            .map(|reg| (reg.id, reg.uri.clone()))
            .collect();
        for (sub, uri) in subscriptions {
            info!(session, role = %role, "subscription to \"{uri}\" revoked: the role may no longer subscribe to it");
            let _ = self.remove_subscriber(sub, session, uris::NOT_AUTHORIZED);
        }
        for (reg, uri) in registrations {
            info!(session, role = %role, "registration of \"{uri}\" revoked: the role may no longer register it");
            let _ = self.remove_callee(reg, session, uris::NOT_AUTHORIZED);
        }
    }

    /// New `stats` settings. A session's current cycle continues, except when the counting
    /// changes (`rated_message_size`, `trigger_after_rated_messages`,
    /// `trigger_after_duration`): then every joined session's cycle is closed at the reload
    /// (an `on_stats` with `last: false`), so that each cycle is counted under one set of
    /// settings, and the next one follows the new settings. `trigger_on_join` and
    /// `trigger_on_leave` apply to sessions joining or leaving after the reload.
    ///
    /// Metering turned off: every joined session's cycle is closed with its final snapshot
    /// (`last: true`, if the old settings report on leave) and the session is metered no more.
    /// Metering turned on: sessions that joined before are not metered (their totals would
    /// lack everything before the reload); sessions from the next HELLO on are.
    fn reconfigure_stats(&mut self, new: Option<StatsConfig>) {
        let old = std::mem::replace(&mut self.stats, new);
        let conns: Vec<ConnId> = self.sessions.keys().copied().collect();
        match (old, new) {
            (Some(old), None) => {
                for conn in conns {
                    let Some(s) = self.sessions.get_mut(&conn) else {
                        continue;
                    };
                    // The timer of a meter that is gone does nothing (generation moved on).
                    s.stats_timer += 1;
                    let joined = s.state == SessionState::Joined;
                    if joined && old.trigger_on_leave {
                        let closed = metering::close_stats_cycle(
                            &self.name,
                            s,
                            self.now,
                            &self.clock,
                            Some("metering_off"),
                        );
                        self.publish_cycle(closed);
                    }
                    if let Some(s) = self.sessions.get_mut(&conn) {
                        s.meter = None;
                    }
                }
            }
            (Some(old), Some(new)) => {
                let counting_changed = old.rated_message_size != new.rated_message_size
                    || old.trigger_after_rated_messages != new.trigger_after_rated_messages
                    || old.trigger_after_duration != new.trigger_after_duration;
                for conn in conns {
                    let Some(s) = self.sessions.get_mut(&conn) else {
                        continue;
                    };
                    let Some(meter) = s.meter.as_mut() else {
                        continue;
                    };
                    meter.reconfigure(&new);
                    if counting_changed && s.state == SessionState::Joined {
                        // Closing the cycle re-arms the duration timer with the new period.
                        self.take_snapshot(conn);
                    }
                }
            }
            (None, _) => {}
        }
    }
}

fn same_histories(a: &[crate::broker::History], b: &[crate::broker::History]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.uri == y.uri && x.policy == y.policy && x.limit == y.limit)
}

/// `roles added [a], removed [b], changed [c]` for the log.
fn describe_roles(old: &Roles, new: &Roles) -> String {
    let (old_names, new_names) = (old.names(), new.names());
    let added: Vec<&str> = new_names
        .iter()
        .filter(|n| !old_names.contains(n))
        .copied()
        .collect();
    let removed: Vec<&str> = old_names
        .iter()
        .filter(|n| !new_names.contains(n))
        .copied()
        .collect();
    let changed: Vec<&str> = new_names
        .iter()
        .filter(|n| old_names.contains(n) && !new.same_role(old, n))
        .copied()
        .collect();
    let mut parts = Vec::new();
    for (what, names) in [("added", added), ("removed", removed), ("changed", changed)] {
        if !names.is_empty() {
            parts.push(format!("{what} [{}]", names.join(", ")));
        }
    }
    format!("roles {}", parts.join(", "))
}
