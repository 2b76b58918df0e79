//! The realm's authorization step: the decision on each PUBLISH, SUBSCRIBE, REGISTER and CALL,
//! from the role's static [`crate::permissions`] or, for a role with an `authorizer`, from calling
//! that procedure ([`crate::auth::dynamic_authorizer`]). While a session waits for a dynamic
//! decision, its later messages queue behind the pending one, so they are still handled in order.

use std::collections::VecDeque;

use tracing::warn;
use wamp_proto::{Dict, Message, Value};

use super::*;
use crate::auth::dynamic_authorizer::{call_args, parse_result};
use crate::permissions::Decision;

impl Realm {
    /// The decision for `s` to perform `action` on `uri` when none came with the request (see
    /// [`Origin`]): for a role with a dynamic authorizer, a cached one (else denied); else the
    /// static permissions. Decisions of permissions with `cache: true` are kept in the session,
    /// so a session that publishes to the same topic again is not matched against the role's
    /// permissions again.
    /// The session a request came from and the decision on `action` for `uri` (the dynamic
    /// authorizer's when the request waited for it, else taken now); a denial is the request's
    /// ERROR `wamp.error.not_authorized`, naming the role.
    pub(super) fn authorize(
        &self,
        from: &Origin,
        uri: &str,
        action: Action,
    ) -> Result<(&Session, Decision), RequestError> {
        let s = self.sender(from.conn)?;
        let decision = from
            .decided
            .unwrap_or_else(|| self.decide_for(s, uri, action));
        if !decision.allow {
            return Err(RequestError::new(
                uris::NOT_AUTHORIZED,
                format!(
                    "session is not authorized to {} \"{uri}\" (role \"{}\")",
                    action.phrase(),
                    s.identity.authrole
                ),
            ));
        }
        Ok((s, decision))
    }

    pub(super) fn decide_for(&self, s: &Session, uri: &str, action: Action) -> Decision {
        if let Some(decision) = s.decision_cache.borrow().get(uri, action) {
            return decision;
        }
        if self
            .roles
            .dynamic_authorizer(&s.identity.authrole)
            .is_some()
        {
            return Decision::default();
        }
        let (decision, cache) = self
            .roles
            .authorize_cacheable(&s.identity.authrole, uri, action);
        if cache {
            s.decision_cache.borrow_mut().put(uri, action, decision);
        }
        decision
    }

    /// Whether `msg` must wait: its session is already waiting for a decision (then it queues),
    /// or it needs one from the dynamic authorizer (then the call is made and it waits).
    pub(super) fn must_wait_for_authorizer(
        &mut self,
        conn: ConnId,
        msg: Message,
    ) -> Option<Message> {
        let s = self.sessions.get_mut(&conn)?;
        if let Some(queue) = s.blocked.as_mut() {
            queue.push_back(msg);
            return None;
        }
        let Some(procedure) = self.roles.dynamic_authorizer(&s.identity.authrole) else {
            return Some(msg);
        };
        let (uri, action, options): (&str, Action, &Dict) = match &msg {
            Message::Publish { topic, options, .. } => (topic, Action::Publish, options),
            Message::Subscribe { topic, options, .. } => (topic, Action::Subscribe, options),
            Message::Register {
                procedure, options, ..
            } => (procedure, Action::Register, options),
            Message::Call {
                procedure, options, ..
            } => {
                if self.rpc.calls.of_call(conn, request_of(&msg)).is_some() {
                    // A further chunk of a progressive call invocation was authorized already.
                    return Some(msg);
                }
                (procedure, Action::Call, options)
            }
            _ => return Some(msg),
        };
        if s.decision_cache.borrow().get(uri, action).is_some() {
            return Some(msg);
        }
        let args = call_args(&s.details(&self.name), uri, action, options);
        let purpose = CallPurpose::Authorize {
            conn,
            session: s.id,
        };
        let procedure = procedure.to_owned();
        s.blocked = Some(VecDeque::from([msg]));
        self.effects.push_back(Effect::Call {
            realm: self.name.clone(),
            procedure,
            args,
            purpose,
        });
        None
    }

    /// The dynamic authorizer answered for the message at the head of the session's queue.
    pub(super) fn handle_authorizer_result(
        &mut self,
        conn: ConnId,
        session: Id,
        outcome: InternalCallOutcome,
    ) {
        let Some(s) = self.sessions.get_mut(&conn) else {
            return;
        };
        if s.id != session {
            return;
        }
        let Some(mut queue) = s.blocked.take() else {
            return;
        };
        let Some(head) = queue.pop_front() else {
            return;
        };
        let answer = match outcome {
            Ok(r) => {
                let value = r
                    .args
                    .and_then(|a| a.into_iter().next())
                    .unwrap_or(Value::Null);
                parse_result(&value)
            }
            Err(e) => Err(format!("the authorizer failed with {}", e.error)),
        };
        let decision = match answer {
            Ok(d) => d,
            Err(why) => {
                warn!(session, "dynamic authorization denied: {why}");
                Default::default()
            }
        };
        if let Some((uri, action)) = uri_and_action(&head) {
            s.decision_cache.borrow_mut().insert(uri, action, decision);
        }
        self.on_message_authorized(conn, head, Some(decision.decision()));
        for msg in queue {
            self.on_message(conn, msg);
        }
    }
}

fn request_of(msg: &Message) -> wamp_proto::Id {
    match msg {
        Message::Call { request, .. } => *request,
        _ => 0,
    }
}

fn uri_and_action(msg: &Message) -> Option<(&str, Action)> {
    Some(match msg {
        Message::Publish { topic, .. } => (topic, Action::Publish),
        Message::Subscribe { topic, .. } => (topic, Action::Subscribe),
        Message::Register { procedure, .. } => (procedure, Action::Register),
        Message::Call { procedure, .. } => (procedure, Action::Call),
        _ => return None,
    })
}
