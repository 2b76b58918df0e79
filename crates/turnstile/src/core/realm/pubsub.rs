//! The realm's broker side: PUBLISH, SUBSCRIBE, UNSUBSCRIBE, and delivering events once
//! serialized per serializer.

use std::collections::HashMap;

use bytes::Bytes;
use tracing::{debug, warn};
use wamp_proto::message::code;
use wamp_proto::{dict, random_id, uris, Dict, Id, List, MatchPolicy, Message, Value};

use super::options::*;
use super::*;

impl Realm {
    /// Publishes an event from the realm's service session, if the meta API is on.
    pub(super) fn publish_meta(&mut self, topic: &str, args: List, kind: CountKind) {
        if !self.options.enable_meta_api {
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
            let receivers: Vec<ConnId> = sub
                .subscribers
                .iter()
                .copied()
                .filter(|c| eligibility.admits(*c, &self.sessions))
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
            for conn in receivers {
                let Some(s) = self.sessions.get(&conn) else {
                    continue;
                };
                let serializer = s.info.serializer;
                let bytes = match &encoded[serializer.index()] {
                    Some(b) => b.clone(),
                    None => match serializer.encode(&event) {
                        Ok(b) => {
                            let b = Bytes::from(b);
                            encoded[serializer.index()] = Some(b.clone());
                            b
                        }
                        Err(e) => {
                            warn!(session = s.id, error = %e, "cannot serialize an event");
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
        conn: ConnId,
        request: Id,
        options: Dict,
        topic: String,
        args: Option<List>,
        kwargs: Option<Dict>,
    ) {
        let acknowledge = match opt_bool(&options, "acknowledge", "PUBLISH") {
            Ok(a) => a.unwrap_or(false),
            Err(e) => return self.send_error(conn, code::PUBLISH, request, e.uri, &e.text),
        };
        match self.publish(conn, &options, &topic, args, kwargs) {
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
        conn: ConnId,
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
        let s = &self.sessions[&conn];
        let decision = self
            .authorizer
            .authorize(&s.identity.authrole, topic, Action::Publish);
        if !decision.allow {
            return Err(RequestError::new(
                uris::NOT_AUTHORIZED,
                format!(
                    "session is not authorized to publish to topic \"{topic}\" (role \"{}\")",
                    s.identity.authrole
                ),
            ));
        }
        let exclude_me = opt_bool(options, "exclude_me", "PUBLISH")?.unwrap_or(true);
        let disclose_me = opt_bool(options, "disclose_me", "PUBLISH")?.unwrap_or(false);
        let mut eligibility = Eligibility::from_options(options)?;
        if exclude_me {
            eligibility.exclude_conn = Some(conn);
        }
        let mut details = Dict::new();
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
        Ok(self.dispatch_event(
            topic,
            details,
            args,
            kwargs,
            &eligibility,
            CountKind::Checked,
        ))
    }

    pub(super) fn on_subscribe(&mut self, conn: ConnId, request: Id, options: Dict, topic: String) {
        match self.subscribe(conn, &options, &topic) {
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
                    let session_id = self.sessions.get(&conn).map_or(0, |s| s.id);
                    if outcome.created {
                        let info = self.broker.get(outcome.id).map(subscription_info);
                        let args = vec![Value::from(session_id), Value::from(info)];
                        self.publish_meta(topic::SUB_ON_CREATE, args, CountKind::Checked);
                    }
                    let args = vec![Value::from(session_id), Value::from(outcome.id)];
                    self.publish_meta(topic::SUB_ON_SUBSCRIBE, args, CountKind::Checked);
                }
            }
            Err(e) => self.send_error(conn, code::SUBSCRIBE, request, e.uri, &e.text),
        }
    }

    pub(super) fn subscribe(
        &mut self,
        conn: ConnId,
        options: &Dict,
        topic: &str,
    ) -> Result<crate::core::broker::Subscribed, RequestError> {
        let policy = match_policy(options, "SUBSCRIBE")?;
        self.check_uri(topic, policy)?;
        let s = &self.sessions[&conn];
        if !self
            .authorizer
            .authorize(&s.identity.authrole, topic, Action::Subscribe)
            .allow
        {
            return Err(RequestError::new(
                uris::NOT_AUTHORIZED,
                format!(
                    "session is not authorized to subscribe to topic \"{topic}\" (role \"{}\")",
                    s.identity.authrole
                ),
            ));
        }
        let (clock, now) = (self.clock, self.now);
        let outcome = self
            .broker
            .subscribe(conn, topic, policy, || clock.iso8601(now));
        if let Some(s) = self.sessions.get_mut(&conn) {
            s.subscriptions.insert(outcome.id);
        }
        Ok(outcome)
    }

    pub(super) fn on_unsubscribe(&mut self, conn: ConnId, request: Id, subscription: Id) {
        let is_mine = self.sessions[&conn].subscriptions.contains(&subscription);
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
        let session_id = match self.sessions.get_mut(&conn) {
            Some(s) => {
                s.subscriptions.remove(&subscription);
                s.id
            }
            None => return,
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

/// Who receives a publication: black- and whitelists from PUBLISH options, and publisher
/// exclusion.
#[derive(Debug, Default)]
pub(super) struct Eligibility {
    exclude_conn: Option<ConnId>,
    exclude: Option<Vec<Id>>,
    exclude_authid: Option<Vec<String>>,
    exclude_authrole: Option<Vec<String>>,
    eligible: Option<Vec<Id>>,
    eligible_authid: Option<Vec<String>>,
    eligible_authrole: Option<Vec<String>>,
}

impl Eligibility {
    fn from_options(options: &Dict) -> Result<Self, RequestError> {
        Ok(Self {
            exclude_conn: None,
            exclude: opt_ids(options, "exclude")?,
            exclude_authid: opt_strings(options, "exclude_authid")?,
            exclude_authrole: opt_strings(options, "exclude_authrole")?,
            eligible: opt_ids(options, "eligible")?,
            eligible_authid: opt_strings(options, "eligible_authid")?,
            eligible_authrole: opt_strings(options, "eligible_authrole")?,
        })
    }

    fn admits(&self, conn: ConnId, sessions: &HashMap<ConnId, Session>) -> bool {
        if self.exclude_conn == Some(conn) {
            return false;
        }
        let Some(s) = sessions.get(&conn) else {
            return false;
        };
        if s.state != SessionState::Joined {
            return false;
        }
        let (id, authid, authrole) = (s.id, &s.identity.authid, &s.identity.authrole);
        if self.exclude.as_ref().is_some_and(|l| l.contains(&id))
            || self
                .exclude_authid
                .as_ref()
                .is_some_and(|l| l.contains(authid))
            || self
                .exclude_authrole
                .as_ref()
                .is_some_and(|l| l.contains(authrole))
        {
            return false;
        }
        self.eligible.as_ref().is_none_or(|l| l.contains(&id))
            && self
                .eligible_authid
                .as_ref()
                .is_none_or(|l| l.contains(authid))
            && self
                .eligible_authrole
                .as_ref()
                .is_none_or(|l| l.contains(authrole))
    }
}

pub(super) fn subscription_info(s: &crate::core::broker::Subscription) -> Dict {
    dict! {
        "id" => s.id,
        "created" => s.created.as_str(),
        "uri" => s.uri.as_str(),
        "match" => s.policy.as_str(),
    }
}
