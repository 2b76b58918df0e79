//! The realm's meta procedures (`wamp.session.*`, `wamp.subscription.*`, `wamp.registration.*`),
//! answered by the realm's service session.

use wamp_proto::{uris, Dict, Id, List, Value};

use super::*;

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
                self.by_session_id
                    .get(&id)
                    .and_then(|c| self.sessions.get(c))
                    .filter(|s| s.state == SessionState::Joined)
                    .map(|s| Value::Dict(s.details(&self.name)))
                    .ok_or_else(|| no_such_session(id))
            }),
            "wamp.session.kill" => id_arg(&args, 0, "session_id").and_then(|id| {
                let (reason, message) = kill_reason(&kwargs)?;
                let target = self.by_session_id.get(&id).copied();
                match target {
                    Some(t) if t != conn && self.sessions[&t].state == SessionState::Joined => {
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
            _ => return None,
        };
        Some(result)
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
