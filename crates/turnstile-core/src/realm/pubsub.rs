//! The realm's pub/sub side: PUBLISH, SUBSCRIBE, UNSUBSCRIBE, a leaving subscriber, and
//! delivering events (meta events and testaments too) once serialized per serializer.

use bytes::Bytes;
use tracing::{debug, warn};
use wamp_proto::message::code;
use wamp_proto::{dict, random_id, uris, Dict, Id, List, MatchPolicy, Message, Serializer, Value};

use super::options::*;
use super::*;
use crate::broker::{Eligibility, RetainedEvent, StoredEvent};
use crate::session::Sessions;

impl Realm {
    /// Publishes an event from the realm's service session, if the meta API is on.
    pub(super) fn publish_meta(&mut self, topic: &str, args: List, kind: CountKind) {
        // Nobody listening (the common case): no event to build. A session leaving with many
        // subscriptions and registrations has four removal events per entry.
        if !self.options.enable_meta_api || !self.broker.has_match(topic) {
            return;
        }
        let details = dict! {
            "publisher" => self.service_id,
            "publisher_authid" => SERVICE_AUTHID,
            "publisher_authrole" => TRUSTED_ROLE,
        };
        self.dispatch_event(
            topic,
            details,
            Some(args),
            None,
            &Eligibility::default(),
            kind,
        );
    }

    /// Publishes a testament of a session that has just ended, as it would have published it.
    pub(super) fn publish_testament(&mut self, s: &Session, t: crate::session::Testament) {
        let Ok(eligibility) = eligibility_from_options(&t.options) else {
            return;
        };
        let decision = self.decide_for(s, &t.topic, Action::Publish);
        let mut details = Dict::new();
        copy_passthru(&t.options, &mut details);
        if t.options
            .get("disclose_me")
            .and_then(Value::as_bool)
            .unwrap_or(false)
            || decision.disclose
        {
            details.insert("publisher".into(), Value::from(s.id));
            details.insert(
                "publisher_authid".into(),
                Value::from(s.identity.authid.as_str()),
            );
            details.insert(
                "publisher_authrole".into(),
                Value::from(s.identity.authrole.as_str()),
            );
        }
        debug!(session = s.id, topic = %t.topic, "publishing testament");
        self.dispatch_event(
            &t.topic,
            details,
            t.args,
            t.kwargs,
            &eligibility,
            CountKind::Checked,
        );
    }

    /// Sends `conn` the retained events matching its new subscription `sub` (`get_retained`).
    fn send_retained(&mut self, conn: ConnId, sub: Id) {
        let Some(subscription) = self.broker.get(sub) else {
            return;
        };
        let policy = subscription.policy;
        for (topic, event) in self
            .broker
            .retained_matching(&subscription.uri.clone(), policy)
        {
            if !admits(&event.eligibility, conn, &self.sessions) {
                continue;
            }
            let mut details = event.details;
            details.insert("retained".into(), Value::Bool(true));
            if policy != MatchPolicy::Exact {
                details.insert("topic".into(), Value::from(topic));
            }
            let msg = Message::Event {
                subscription: sub,
                publication: event.publication,
                details,
                args: event.args,
                kwargs: event.kwargs,
            };
            self.send(conn, &msg);
        }
    }

    /// Delivers one publication to every eligible subscriber of every matching subscription,
    /// serializing each EVENT once per serializer. Returns the publication id.
    pub(super) fn dispatch_event(
        &mut self,
        topic: &str,
        details: Dict,
        args: Option<List>,
        kwargs: Option<Dict>,
        eligibility: &Eligibility,
        kind: CountKind,
    ) -> Id {
        let publication = random_id();
        for sub_id in self.broker.matching(topic) {
            let Some(sub) = self.broker.get(sub_id) else {
                continue;
            };
            let mut details = details.clone();
            if sub.policy != MatchPolicy::Exact {
                details.insert("topic".into(), Value::from(topic));
            }
            // One session lookup per receiver here; sending looks it up once more to meter.
            let receivers: Vec<(ConnId, Serializer)> = sub
                .subscribers
                .iter()
                .filter_map(|&c| {
                    let s = self.sessions.get(&c)?;
                    let admitted = s.state == SessionState::Joined
                        && eligibility.admits(c, s.id, &s.identity.authid, &s.identity.authrole);
                    admitted.then_some((c, s.info.serializer))
                })
                .collect();
            if receivers.is_empty() {
                continue;
            }
            let event = Message::Event {
                subscription: sub_id,
                publication,
                details,
                args: args.clone(),
                kwargs: kwargs.clone(),
            };
            let mut encoded: [Option<Bytes>; 3] = Default::default();
            for (conn, serializer) in receivers {
                let bytes = match &encoded[serializer.index()] {
                    Some(b) => b.clone(),
                    None => match serializer.encode(&event) {
                        Ok(b) => {
                            let b = Bytes::from(b);
                            encoded[serializer.index()] = Some(b.clone());
                            b
                        }
                        Err(e) => {
                            warn!(topic, error = %e, "cannot serialize an event");
                            continue;
                        }
                    },
                };
                self.send_bytes(conn, bytes, kind);
            }
        }
        publication
    }

    pub(super) fn on_publish(
        &mut self,
        from: Origin,
        request: Id,
        options: Dict,
        topic: String,
        args: Option<List>,
        kwargs: Option<Dict>,
    ) {
        let acknowledge = match opt_bool(&options, "acknowledge", "PUBLISH") {
            Ok(a) => a.unwrap_or(false),
            Err(e) => return self.send_error(from.conn, code::PUBLISH, request, e.uri, &e.text),
        };
        let conn = from.conn;
        match self.publish(from, &options, &topic, args, kwargs) {
            Ok(publication) => {
                if acknowledge {
                    self.send(
                        conn,
                        &Message::Published {
                            request,
                            publication,
                        },
                    );
                }
            }
            Err(e) => {
                if acknowledge {
                    self.send_error(conn, code::PUBLISH, request, e.uri, &e.text);
                } else {
                    debug!(conn, topic, error = %e.text, "unacknowledged publication refused");
                }
            }
        }
    }

    pub(super) fn publish(
        &mut self,
        from: Origin,
        options: &Dict,
        topic: &str,
        args: Option<List>,
        kwargs: Option<Dict>,
    ) -> Result<Id, RequestError> {
        self.check_uri(topic, MatchPolicy::Exact)?;
        if topic.starts_with("wamp.") {
            return Err(RequestError::new(
                uris::INVALID_URI,
                format!("cannot publish to topic \"{topic}\": the wamp. prefix is reserved"),
            ));
        }
        let conn = from.conn;
        let (s, decision) = self.authorize(&from, topic, Action::Publish)?;
        let exclude_me = opt_bool(options, "exclude_me", "PUBLISH")?.unwrap_or(true);
        let disclose_me = opt_bool(options, "disclose_me", "PUBLISH")?.unwrap_or(false);
        let retain = opt_bool(options, "retain", "PUBLISH")?.unwrap_or(false);
        let mut eligibility = eligibility_from_options(options)?;
        let mut details = Dict::new();
        copy_passthru(options, &mut details);
        if disclose_me || decision.disclose {
            details.insert("publisher".into(), Value::from(s.id));
            details.insert(
                "publisher_authid".into(),
                Value::from(s.identity.authid.as_str()),
            );
            details.insert(
                "publisher_authrole".into(),
                Value::from(s.identity.authrole.as_str()),
            );
        }
        let history = self.broker.keeps_history(topic);
        let keep = (retain || history).then(|| (details.clone(), args.clone(), kwargs.clone()));
        let publisher = s.id;
        let mut retained_eligibility = eligibility.clone();
        if exclude_me {
            // The retained event stays excluded from its publisher, as the original was.
            retained_eligibility
                .exclude
                .get_or_insert_with(Vec::new)
                .push(publisher);
        }
        if exclude_me {
            eligibility.exclude_conn = Some(conn);
        }
        let publication = self.dispatch_event(
            topic,
            details,
            args,
            kwargs,
            &eligibility,
            CountKind::Checked,
        );
        if let Some((details, args, kwargs)) = keep {
            if history {
                let stored = StoredEvent {
                    timestamp: self.clock.iso8601(self.now),
                    publication,
                    topic: topic.to_owned(),
                    args: args.clone(),
                    kwargs: kwargs.clone(),
                };
                self.broker.record_history(&stored);
            }
            if retain {
                let eligibility = retained_eligibility;
                self.broker.retain(
                    topic,
                    RetainedEvent {
                        publication,
                        details,
                        args,
                        kwargs,
                        eligibility,
                    },
                );
            }
        }
        Ok(publication)
    }

    pub(super) fn on_subscribe(&mut self, from: Origin, request: Id, options: Dict, topic: String) {
        let conn = from.conn;
        let get_retained = match opt_bool(&options, "get_retained", "SUBSCRIBE") {
            Ok(g) => g.unwrap_or(false),
            Err(e) => return self.send_error(conn, code::SUBSCRIBE, request, e.uri, &e.text),
        };
        match self.subscribe(from, &options, &topic) {
            Ok(outcome) => {
                self.send(
                    conn,
                    &Message::Subscribed {
                        request,
                        subscription: outcome.id,
                    },
                );
                // The meta events follow the SUBSCRIBED reply, never for wamp. topics.
                if outcome.added && !topic.starts_with("wamp.") {
                    let session_id = from.session;
                    if outcome.created {
                        let info = self.broker.get(outcome.id).map(subscription_info);
                        let args = vec![Value::from(session_id), Value::from(info)];
                        self.publish_meta(topic::SUB_ON_CREATE, args, CountKind::Checked);
                    }
                    let args = vec![Value::from(session_id), Value::from(outcome.id)];
                    self.publish_meta(topic::SUB_ON_SUBSCRIBE, args, CountKind::Checked);
                }
                if get_retained {
                    self.send_retained(conn, outcome.id);
                }
            }
            Err(e) => self.send_error(conn, code::SUBSCRIBE, request, e.uri, &e.text),
        }
    }

    pub(super) fn subscribe(
        &mut self,
        from: Origin,
        options: &Dict,
        topic: &str,
    ) -> Result<crate::broker::Subscribed, RequestError> {
        let policy = match_policy(options, "SUBSCRIBE")?;
        self.check_uri(topic, policy)?;
        let conn = from.conn;
        let (s, _) = self.authorize(&from, topic, Action::Subscribe)?;
        let max = self.session_limits.max_subscriptions;
        let already = self
            .broker
            .lookup(topic, policy)
            .is_some_and(|sub| sub.subscribers.contains(&conn));
        if !already && self.broker.subscription_count(conn) >= max {
            return Err(RequestError::limit_exceeded(
                s,
                "subscriptions",
                max,
                "unsubscribe from one before subscribing to another",
                self.now,
            ));
        }
        let (clock, now) = (self.clock, self.now);
        let mut removed = Vec::new();
        let outcome =
            self.broker
                .subscribe(conn, topic, policy, || clock.iso8601(now), &mut removed);
        self.announce_removals(&removed, &[]);
        Ok(outcome)
    }

    pub(super) fn on_unsubscribe(&mut self, from: Origin, request: Id, subscription: Id) {
        let (conn, session_id) = (from.conn, from.session);
        let is_mine = self.broker.is_subscriber(conn, subscription);
        let uri_is_meta = self
            .broker
            .get(subscription)
            .is_some_and(|s| s.uri.starts_with("wamp."));
        let outcome = if is_mine {
            self.broker.unsubscribe(conn, subscription)
        } else {
            None
        };
        let Some(outcome) = outcome else {
            let text = format!("session has no subscription with ID {subscription}");
            return self.send_error(
                conn,
                code::UNSUBSCRIBE,
                request,
                uris::NO_SUCH_SUBSCRIPTION,
                &text,
            );
        };
        self.send(
            conn,
            &Message::Unsubscribed {
                request,
                details: None,
            },
        );
        if !uri_is_meta {
            let args = vec![Value::from(session_id), Value::from(subscription)];
            self.publish_meta(topic::SUB_ON_UNSUBSCRIBE, args.clone(), CountKind::Checked);
            if outcome.deleted {
                self.publish_meta(topic::SUB_ON_DELETE, args, CountKind::Checked);
            }
        }
    }
}

/// The black- and whitelists of PUBLISH options.
pub(super) fn eligibility_from_options(options: &Dict) -> Result<Eligibility, RequestError> {
    Ok(Eligibility {
        exclude_conn: None,
        exclude: opt_ids(options, "exclude")?,
        exclude_authid: opt_strings(options, "exclude_authid")?,
        exclude_authrole: opt_strings(options, "exclude_authrole")?,
        eligible: opt_ids(options, "eligible")?,
        eligible_authid: opt_strings(options, "eligible_authid")?,
        eligible_authrole: opt_strings(options, "eligible_authrole")?,
    })
}

/// Whether the session on `conn` is joined and admitted by `eligibility`.
pub(super) fn admits(eligibility: &Eligibility, conn: ConnId, sessions: &Sessions) -> bool {
    let Some(s) = sessions.get(&conn) else {
        return false;
    };
    s.state == SessionState::Joined
        && eligibility.admits(conn, s.id, &s.identity.authid, &s.identity.authrole)
}

/// Copies the payload pass-through keys (`ppt_*`, `enc_algo`) from a request's options into the
/// details of what is forwarded, so end-to-end encrypted payloads pass unchanged.
pub(super) fn copy_passthru(from: &Dict, to: &mut Dict) {
    for (k, v) in from {
        if k.starts_with("ppt_") || k == "enc_algo" || k == "enc_key" || k == "enc_serializer" {
            to.insert(k.clone(), v.clone());
        }
    }
}

pub(super) fn subscription_info(s: &crate::broker::Subscription) -> Dict {
    dict! {
        "id" => s.id,
        "created" => s.created.as_str(),
        "uri" => s.uri.as_str(),
        "match" => s.policy.as_str(),
    }
}
