//! The realm's meta procedures (`wamp.session.*`, `wamp.subscription.*`, `wamp.registration.*`),
//! answered by the realm's service session.

use wamp_proto::{dict, random_id, uris, Dict, Id, List, MatchPolicy, Message, Value};

use crate::session::{Testament, TestamentScope};

use super::*;
use super::{options, pubsub, rpc};

/// The revocation reason of `wamp.subscription.remove_subscriber` and
/// `wamp.registration.remove_callee`.
const REMOVED: &str = "wamp.error.removed";

impl Realm {
    /// Runs a meta procedure, if `procedure` is one. Authorization was checked by the caller.
    pub(super) fn meta_call(
        &mut self,
        conn: ConnId,
        procedure: &str,
        args: Option<List>,
        kwargs: Option<Dict>,
    ) -> Option<Result<Value, RequestError>> {
        let args = args.unwrap_or_default();
        let kwargs = kwargs.unwrap_or_default();
        let result = match procedure {
            "wamp.session.count" => {
                filter_authroles(&args).map(|roles| Value::from(self.listed_sessions(roles).len()))
            }
            "wamp.session.list" => filter_authroles(&args).map(|roles| {
                Value::List(
                    self.listed_sessions(roles)
                        .into_iter()
                        .map(Value::from)
                        .collect(),
                )
            }),
            "wamp.session.get" => id_arg(&args, 0, "session_id").and_then(|id| {
                self.sessions
                    .by_id(id)
                    .filter(|s| s.state == SessionState::Joined)
                    .map(|s| Value::Dict(s.details(&self.name)))
                    .ok_or_else(|| no_such_session(id))
            }),
            "wamp.session.kill" => id_arg(&args, 0, "session_id").and_then(|id| {
                let (reason, message) = kill_reason(&kwargs)?;
                let target = self.sessions.conn_of(id);
                match target {
                    Some(t)
                        if t != conn
                            && self
                                .sessions
                                .get(&t)
                                .is_some_and(|s| s.state == SessionState::Joined) =>
                    {
                        self.say_goodbye(t, &reason, &message);
                        Ok(Value::Null)
                    }
                    _ => Err(no_such_session(id)),
                }
            }),
            "wamp.session.kill_by_authid" | "wamp.session.kill_by_authrole" => {
                let by_role = procedure.ends_with("authrole");
                let name = if by_role { "authrole" } else { "authid" };
                str_arg(&args, 0, name).and_then(|wanted| {
                    let (reason, message) = kill_reason(&kwargs)?;
                    let targets: Vec<(ConnId, Id)> = self
                        .sessions
                        .values()
                        .filter(|s| s.conn != conn && s.state == SessionState::Joined)
                        .filter(|s| {
                            let have = if by_role {
                                &s.identity.authrole
                            } else {
                                &s.identity.authid
                            };
                            *have == wanted
                        })
                        .map(|s| (s.conn, s.id))
                        .collect();
                    for (t, _) in &targets {
                        self.say_goodbye(*t, &reason, &message);
                    }
                    Ok(Value::List(
                        targets.into_iter().map(|(_, id)| Value::from(id)).collect(),
                    ))
                })
            }
            "wamp.session.kill_all" => kill_reason(&kwargs).map(|(reason, message)| {
                let targets: Vec<ConnId> = self
                    .sessions
                    .values()
                    .filter(|s| s.conn != conn && s.state == SessionState::Joined)
                    .map(|s| s.conn)
                    .collect();
                for t in &targets {
                    self.say_goodbye(*t, &reason, &message);
                }
                Value::from(targets.len())
            }),
            "wamp.subscription.list" | "wamp.registration.list" => {
                let subs = procedure.starts_with("wamp.subscription");
                self.meta_list(conn, &args, subs)
            }
            "wamp.subscription.lookup" | "wamp.registration.lookup" => {
                let subs = procedure.starts_with("wamp.subscription");
                str_arg(&args, 0, "uri").and_then(|uri| {
                    let policy = match args.get(1) {
                        None | Some(Value::Null) => Ok(MatchPolicy::Exact),
                        Some(Value::Dict(o)) => options::match_policy(o, "lookup"),
                        Some(_) => Err(RequestError::new(
                            uris::INVALID_ARGUMENT,
                            "argument options (position 1) must be a dict such as {\"match\": \"prefix\"}",
                        )),
                    }?;
                    let id = if subs {
                        self.broker.lookup(&uri, policy).map(|s| s.id)
                    } else {
                        self.rpc.dealer.lookup(&uri, policy).map(|r| r.id)
                    };
                    Ok(Value::from(id.filter(|_| self.visible(conn, &uri))))
                })
            }
            "wamp.subscription.match" => str_arg(&args, 0, "topic").map(|topic| {
                let ids: Vec<Value> = if self.visible(conn, &topic) {
                    self.broker
                        .matching(&topic)
                        .into_iter()
                        .map(Value::from)
                        .collect()
                } else {
                    Vec::new()
                };
                if ids.is_empty() {
                    Value::Null
                } else {
                    Value::List(ids)
                }
            }),
            "wamp.registration.match" => str_arg(&args, 0, "procedure").map(|procedure| {
                let id = self
                    .rpc
                    .dealer
                    .matching(&procedure)
                    .filter(|_| self.visible(conn, &procedure));
                Value::from(id)
            }),
            "wamp.subscription.get" => id_arg(&args, 0, "subscription_id").and_then(|id| {
                self.visible_subscription(conn, id)
                    .map(|s| Value::Dict(pubsub::subscription_info(s)))
            }),
            "wamp.registration.get" => id_arg(&args, 0, "registration_id").and_then(|id| {
                self.visible_registration(conn, id)
                    .map(|r| Value::Dict(rpc::registration_info(r)))
            }),
            "wamp.subscription.list_subscribers" | "wamp.subscription.count_subscribers" => {
                id_arg(&args, 0, "subscription_id").and_then(|id| {
                    let ids = self.session_ids(&self.visible_subscription(conn, id)?.subscribers);
                    Ok(if procedure.ends_with("count_subscribers") {
                        Value::from(ids.len())
                    } else {
                        Value::List(ids.into_iter().map(Value::from).collect())
                    })
                })
            }
            "wamp.registration.list_callees" | "wamp.registration.count_callees" => {
                id_arg(&args, 0, "registration_id").and_then(|id| {
                    let ids = self.session_ids(&self.visible_registration(conn, id)?.callees);
                    Ok(if procedure.ends_with("count_callees") {
                        Value::from(ids.len())
                    } else {
                        Value::List(ids.into_iter().map(Value::from).collect())
                    })
                })
            }
            "wamp.subscription.remove_subscriber" => {
                id_arg(&args, 0, "subscription_id").and_then(|sub| {
                    let session = id_arg(&args, 1, "session_id")?;
                    self.visible_subscription(conn, sub)?;
                    self.remove_subscriber(sub, session, REMOVED)
                        .map(|_| Value::Null)
                })
            }
            "wamp.registration.remove_callee" => {
                id_arg(&args, 0, "registration_id").and_then(|reg| {
                    let session = id_arg(&args, 1, "session_id")?;
                    self.visible_registration(conn, reg)?;
                    self.remove_callee(reg, session, REMOVED)
                        .map(|_| Value::Null)
                })
            }
            "wamp.subscription.get_events" => id_arg(&args, 0, "subscription_id").and_then(|id| {
                let limit = match kwargs.get("limit").or(args.get(1)) {
                    None | Some(Value::Null) => 10,
                    Some(v) => v.as_u64().ok_or_else(|| {
                        RequestError::new(
                            uris::INVALID_ARGUMENT,
                            "argument limit must be a non-negative integer",
                        )
                    })? as usize,
                };
                let sub = self.visible_subscription(conn, id)?;
                let history = self.broker.history(&sub.uri, sub.policy).ok_or_else(|| {
                    RequestError::new(
                        HISTORY_UNAVAILABLE,
                        format!(
                            "no event history is kept for subscription {id} (topic \"{}\")",
                            sub.uri
                        ),
                    )
                })?;
                let events = history.events.iter().rev().take(limit).map(|e| {
                    let mut d = dict! {
                        "timestamp" => e.timestamp.as_str(),
                        "publication" => e.publication,
                        "subscription" => id,
                        "topic" => e.topic.as_str(),
                    };
                    if let Some(a) = &e.args {
                        d.insert("args".into(), Value::List(a.clone()));
                    }
                    if let Some(k) = &e.kwargs {
                        d.insert("kwargs".into(), Value::Dict(k.clone()));
                    }
                    Value::Dict(d)
                });
                Ok(Value::List(events.collect()))
            }),
            "wamp.session.add_testament" => self.add_testament(conn, &args, &kwargs),
            "wamp.session.flush_testaments" => testament_scope(&kwargs).map(|scope| {
                let Some(s) = self.sessions.get_mut(&conn) else {
                    return Value::from(0);
                };
                let before = s.testaments.len();
                s.testaments.retain(|t| t.scope != scope);
                Value::from(before - s.testaments.len())
            }),
            _ => return None,
        };
        Some(result)
    }

    /// `{"exact": [...], "prefix": [...], "wildcard": [...]}` of subscriptions or registrations,
    /// of one session when a session id is given.
    fn meta_list(
        &self,
        conn: ConnId,
        args: &List,
        subscriptions: bool,
    ) -> Result<Value, RequestError> {
        let only: Option<ConnId> = match args.first() {
            None | Some(Value::Null) => None,
            Some(v) => {
                let id = v.as_u64().ok_or_else(|| {
                    RequestError::new(
                        uris::INVALID_ARGUMENT,
                        "argument session_id (position 0) must be an integer ID",
                    )
                })?;
                Some(
                    self.sessions
                        .conn_of(id)
                        .ok_or_else(|| no_such_session(id))?,
                )
            }
        };
        let mut out = dict! {
            "exact" => Value::List(vec![]),
            "prefix" => Value::List(vec![]),
            "wildcard" => Value::List(vec![]),
        };
        let mut push = |policy: MatchPolicy, id: Id| {
            if let Some(Value::List(l)) = out.get_mut(policy.as_str()) {
                l.push(Value::from(id));
            }
        };
        if subscriptions {
            for s in self.broker.iter() {
                if self.visible(conn, &s.uri) && only.is_none_or(|c| s.subscribers.contains(&c)) {
                    push(s.policy, s.id);
                }
            }
        } else {
            for r in self.rpc.dealer.iter() {
                if self.visible(conn, &r.uri) && only.is_none_or(|c| r.callees.contains(&c)) {
                    push(r.policy, r.id);
                }
            }
        }
        Ok(Value::Dict(out))
    }

    /// Whether the caller may see `uri` in meta results: `wamp.` URIs only for `trusted`.
    fn visible(&self, conn: ConnId, uri: &str) -> bool {
        !uri.starts_with("wamp.")
            || self
                .sessions
                .get(&conn)
                .is_some_and(|s| s.identity.authrole == TRUSTED_ROLE)
    }

    fn visible_subscription(
        &self,
        conn: ConnId,
        id: Id,
    ) -> Result<&crate::broker::Subscription, RequestError> {
        self.broker
            .get(id)
            .filter(|s| self.visible(conn, &s.uri))
            .ok_or_else(|| {
                RequestError::new(
                    uris::NO_SUCH_SUBSCRIPTION,
                    format!("no subscription with ID {id} exists on this realm"),
                )
            })
    }

    fn visible_registration(
        &self,
        conn: ConnId,
        id: Id,
    ) -> Result<&crate::dealer::Registration, RequestError> {
        self.rpc
            .dealer
            .get(id)
            .filter(|r| self.visible(conn, &r.uri))
            .ok_or_else(|| {
                RequestError::new(
                    uris::NO_SUCH_REGISTRATION,
                    format!("no registration with ID {id} exists on this realm"),
                )
            })
    }

    /// The ids of the joined sessions among `conns` (subscribers or callees): a session that is
    /// leaving is detached from its subscriptions and registrations and not listed.
    fn session_ids(&self, conns: &[ConnId]) -> Vec<Id> {
        conns
            .iter()
            .filter_map(|c| self.sessions.get(c))
            .filter(|s| s.state == SessionState::Joined)
            .map(|s| s.id)
            .collect()
    }

    /// Removes a subscriber (`wamp.subscription.remove_subscriber`, or a reload that took the
    /// permission away): the session is told with an UNSUBSCRIBED giving `reason` if it
    /// announced subscription revocation.
    pub(super) fn remove_subscriber(
        &mut self,
        sub: Id,
        session: Id,
        reason: &str,
    ) -> Result<(), RequestError> {
        let target = self
            .sessions
            .conn_of(session)
            .ok_or_else(|| no_such_session(session))?;
        let outcome = self.broker.unsubscribe(target, sub).ok_or_else(|| {
            RequestError::new(
                uris::NO_SUCH_SUBSCRIPTION,
                format!("session {session} is not subscribed to subscription {sub}"),
            )
        })?;
        let revocable = self
            .sessions
            .get(&target)
            .is_some_and(|s| s.supports("subscriber", "subscription_revocation"));
        if revocable {
            let details = dict! {"subscription" => sub, "reason" => reason};
            self.send(
                target,
                &Message::Unsubscribed {
                    request: 0,
                    details: Some(details),
                },
            );
        }
        let args = vec![Value::from(session), Value::from(sub)];
        self.publish_meta(topic::SUB_ON_UNSUBSCRIBE, args.clone(), CountKind::Checked);
        if outcome.deleted {
            self.publish_meta(topic::SUB_ON_DELETE, args, CountKind::Checked);
        }
        Ok(())
    }

    /// Removes a callee (`wamp.registration.remove_callee`, or a reload that took the permission
    /// away), telling it `reason` if it announced registration revocation; calls in flight still
    /// complete.
    pub(super) fn remove_callee(
        &mut self,
        reg: Id,
        session: Id,
        reason: &str,
    ) -> Result<(), RequestError> {
        let target = self
            .sessions
            .conn_of(session)
            .ok_or_else(|| no_such_session(session))?;
        let deleted = self.rpc.dealer.unregister(target, reg).ok_or_else(|| {
            RequestError::new(
                uris::NO_SUCH_REGISTRATION,
                format!("session {session} is not a callee of registration {reg}"),
            )
        })?;
        let revocable = self
            .sessions
            .get(&target)
            .is_some_and(|s| s.supports("callee", "registration_revocation"));
        if revocable {
            let details = dict! {"registration" => reg, "reason" => reason};
            self.send(
                target,
                &Message::Unregistered {
                    request: 0,
                    details: Some(details),
                },
            );
        }
        let args = vec![Value::from(session), Value::from(reg)];
        self.publish_meta(topic::REG_ON_UNREGISTER, args.clone(), CountKind::Checked);
        if deleted {
            self.publish_meta(topic::REG_ON_DELETE, args, CountKind::Checked);
        }
        Ok(())
    }

    /// `wamp.session.add_testament(topic, args, kwargs, publish_options=, scope=)`.
    fn add_testament(
        &mut self,
        conn: ConnId,
        args: &List,
        kwargs: &Dict,
    ) -> Result<Value, RequestError> {
        let testament_error = |text: String| RequestError::new(TESTAMENT_ERROR, text);
        let topic = str_arg(args, 0, "topic")?;
        if self.check_uri(&topic, MatchPolicy::Exact).is_err() || topic.starts_with("wamp.") {
            return Err(testament_error(format!(
                "invalid testament topic \"{topic}\""
            )));
        }
        let t_args = match args.get(1) {
            None | Some(Value::Null) => None,
            Some(Value::List(l)) => Some(l.clone()),
            Some(_) => {
                return Err(RequestError::new(
                    uris::INVALID_ARGUMENT,
                    "argument args (position 1) must be a list",
                ))
            }
        };
        let t_kwargs = match args.get(2) {
            None | Some(Value::Null) => None,
            Some(Value::Dict(d)) => Some(d.clone()),
            Some(_) => {
                return Err(RequestError::new(
                    uris::INVALID_ARGUMENT,
                    "argument kwargs (position 2) must be a dict",
                ))
            }
        };
        let options = match kwargs.get("publish_options") {
            None | Some(Value::Null) => Dict::new(),
            Some(Value::Dict(d)) => d.clone(),
            Some(_) => {
                return Err(RequestError::new(
                    uris::INVALID_ARGUMENT,
                    "keyword argument publish_options must be a dict",
                ))
            }
        };
        let scope = testament_scope(kwargs)?;
        let s = self.sender(conn)?;
        if !self.decide_for(s, &topic, Action::Publish).allow {
            return Err(RequestError::new(
                uris::NOT_AUTHORIZED,
                format!("session is not authorized to publish to topic \"{topic}\""),
            ));
        }
        pubsub::eligibility_from_options(&options)?;
        let id = random_id();
        let Some(s) = self.sessions.get_mut(&conn) else {
            return Err(RequestError::new(
                uris::NO_SUCH_SESSION,
                "the session has ended",
            ));
        };
        s.testaments.push(Testament {
            topic,
            args: t_args,
            kwargs: t_kwargs,
            options,
            scope,
        });
        Ok(Value::from(id))
    }

    /// Joined sessions, optionally only those whose authrole is in `roles`.
    pub(super) fn listed_sessions(&self, roles: Option<Vec<String>>) -> Vec<Id> {
        self.sessions
            .values()
            .filter(|s| s.state == SessionState::Joined)
            .filter(|s| {
                roles
                    .as_ref()
                    .is_none_or(|r| r.contains(&s.identity.authrole))
            })
            .map(|s| s.id)
            .collect()
    }
}

pub(super) fn filter_authroles(args: &List) -> Result<Option<Vec<String>>, RequestError> {
    match args.first() {
        None | Some(Value::Null) => Ok(None),
        Some(Value::List(l)) => l
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .map(Some)
            .ok_or_else(|| {
                RequestError::new(
                    uris::INVALID_ARGUMENT,
                    "argument filter_authroles must be a list of strings",
                )
            }),
        Some(other) => Err(RequestError::new(
            uris::INVALID_ARGUMENT,
            format!(
                "argument filter_authroles must be a list of strings, found {}",
                other.type_name()
            ),
        )),
    }
}

pub(super) fn id_arg(args: &List, index: usize, name: &str) -> Result<Id, RequestError> {
    args.get(index).and_then(Value::as_u64).ok_or_else(|| {
        RequestError::new(
            uris::INVALID_ARGUMENT,
            format!("argument {name} (position {index}) must be an integer ID"),
        )
    })
}

pub(super) fn str_arg(args: &List, index: usize, name: &str) -> Result<String, RequestError> {
    args.get(index)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| {
            RequestError::new(
                uris::INVALID_ARGUMENT,
                format!("argument {name} (position {index}) must be a string"),
            )
        })
}

pub(super) fn kill_reason(kwargs: &Dict) -> Result<(String, String), RequestError> {
    let reason = match kwargs.get("reason") {
        None | Some(Value::Null) => uris::CLOSE_KILLED.to_owned(),
        Some(Value::Str(s)) if is_valid_uri(s, Default::default(), false) => s.clone(),
        Some(_) => {
            return Err(RequestError::new(
                uris::INVALID_ARGUMENT,
                "keyword argument reason must be a URI",
            ))
        }
    };
    let message = match kwargs.get("message") {
        None | Some(Value::Null) => "killed by the router's meta API".to_owned(),
        Some(Value::Str(s)) => s.clone(),
        Some(_) => {
            return Err(RequestError::new(
                uris::INVALID_ARGUMENT,
                "keyword argument message must be a string",
            ))
        }
    };
    Ok((reason, message))
}

pub(super) fn no_such_session(id: Id) -> RequestError {
    RequestError::new(
        uris::NO_SUCH_SESSION,
        format!("no session with ID {id} exists on this router"),
    )
}

/// `wamp.error.history_unavailable` (Crossbar's URI).
pub(super) const HISTORY_UNAVAILABLE: &str = "wamp.error.history_unavailable";
/// `wamp.error.testament_error` (Crossbar's URI).
pub(super) const TESTAMENT_ERROR: &str = "wamp.error.testament_error";

/// The `scope` keyword argument of the testament procedures: `destroyed` (default) or `detached`.
fn testament_scope(kwargs: &Dict) -> Result<TestamentScope, RequestError> {
    match kwargs.get("scope") {
        None | Some(Value::Null) => Ok(TestamentScope::Destroyed),
        Some(Value::Str(s)) if s == "destroyed" => Ok(TestamentScope::Destroyed),
        Some(Value::Str(s)) if s == "detached" => Ok(TestamentScope::Detached),
        Some(other) => Err(RequestError::new(
            TESTAMENT_ERROR,
            format!("scope must be \"destroyed\" or \"detached\", found {other:?}"),
        )),
    }
}
