//! The realm's RPC side: what it owns ([`Rpc`]: registrations, calls in flight, the router's own
//! calls) and its handlers: REGISTER, UNREGISTER, CALL, CANCEL, YIELD, callee errors, timeouts.

use std::collections::HashMap;

use tracing::debug;
use wamp_proto::message::code;
use wamp_proto::{dict, uris, Dict, Id, List, MatchPolicy, Message, Value};

use super::options::*;
use super::*;
use crate::calls::{Calls, Invocation, InvocationKey};
use crate::dealer::{CallFailure, CallReturn, Caller};
use crate::dealer::{CancelMode, Dealer};
use crate::timer::{Timer, TimerKey, TimerKind};

/// What the realm's RPC side owns.
#[derive(Debug, Default)]
pub(super) struct Rpc {
    pub(super) dealer: Dealer,
    /// The calls in flight, with who made and who serves each.
    pub(super) calls: Calls,
    /// The shell's tokens of calls the router made itself, by the call's `call_request`.
    internal_calls: HashMap<Id, ReplyToken>,
}

impl Rpc {
    /// Calls the router made itself whose answer has not come.
    pub(super) fn internal_calls_in_flight(&self) -> usize {
        self.internal_calls.len()
    }

    /// The registration and callee a call of `procedure` goes to (see
    /// [`Dealer::matching`], [`Dealer::pick_callee`]).
    fn route(&mut self, procedure: &str) -> Option<(Id, ConnId)> {
        let registration = self.dealer.matching(procedure)?;
        let callee = self.dealer.pick_callee(registration)?;
        Some((registration, callee))
    }

    /// Keeps the shell's `reply` token of a call the router makes; returns the call's
    /// `call_request`, by which the answer finds the token.
    fn start_internal_call(&mut self, reply: ReplyToken) -> Id {
        let call_request = loop {
            let t = random_id();
            if !self.internal_calls.contains_key(&t) {
                break t;
            }
        };
        self.internal_calls.insert(call_request, reply);
        call_request
    }

    /// The shell's token of the router's call `call_request`, which has been answered.
    fn finish_internal_call(&mut self, call_request: Id) -> Option<ReplyToken> {
        self.internal_calls.remove(&call_request)
    }
}

impl Realm {
    pub(super) fn on_register(
        &mut self,
        from: Origin,
        request: Id,
        options: Dict,
        procedure: String,
    ) {
        let conn = from.conn;
        match self.register(from, &options, &procedure) {
            Ok(outcome) => {
                self.send(
                    conn,
                    &Message::Registered {
                        request,
                        registration: outcome.id,
                    },
                );
                let session_id = from.session;
                if outcome.created {
                    let info = self.rpc.dealer.get(outcome.id).map(registration_info);
                    let args = vec![Value::from(session_id), Value::from(info)];
                    self.publish_meta(topic::REG_ON_CREATE, args, CountKind::Checked);
                }
                let args = vec![Value::from(session_id), Value::from(outcome.id)];
                self.publish_meta(topic::REG_ON_REGISTER, args, CountKind::Checked);
            }
            Err(e) => self.send_error(conn, code::REGISTER, request, e.uri, &e.text),
        }
    }

    pub(super) fn register(
        &mut self,
        from: Origin,
        options: &Dict,
        procedure: &str,
    ) -> Result<crate::dealer::Registered, RequestError> {
        let policy = match_policy(options, "REGISTER")?;
        self.check_uri(procedure, policy)?;
        if procedure.starts_with("wamp.") {
            return Err(RequestError::new(
                uris::INVALID_URI,
                format!("cannot register procedure \"{procedure}\": the wamp. prefix is reserved"),
            ));
        }
        let invoke = match options.get("invoke") {
            None => InvokePolicy::Single,
            Some(Value::Str(s)) => InvokePolicy::parse(s).ok_or_else(|| {
                RequestError::new(
                    uris::INVALID_ARGUMENT,
                    format!(
                        "REGISTER option invoke must be one of single, roundrobin, random, first, last; found \"{s}\""
                    ),
                )
            })?,
            Some(other) => {
                return Err(RequestError::new(
                    uris::INVALID_ARGUMENT,
                    format!("REGISTER option invoke must be a string, found {}", other.type_name()),
                ))
            }
        };
        let conn = from.conn;
        let (s, _) = self.authorize(&from, procedure, Action::Register)?;
        let max = self.session_limits.max_registrations;
        if self.rpc.dealer.registration_count(conn) >= max {
            return Err(RequestError::limit_exceeded(
                s,
                "registrations",
                max,
                "unregister one before registering another",
                self.now,
            ));
        }
        let (clock, now) = (self.clock, self.now);
        let mut removed = Vec::new();
        let outcome = self.rpc.dealer.register(
            conn,
            procedure,
            policy,
            invoke,
            || clock.iso8601(now),
            &mut removed,
        );
        self.announce_removals(&[], &removed);
        let outcome = outcome
            .map_err(|e| match e {
                RegisterError::AlreadyExists => RequestError::new(
                    uris::PROCEDURE_ALREADY_EXISTS,
                    format!("procedure \"{procedure}\" is already registered"),
                ),
                RegisterError::DifferentPolicy => RequestError::new(
                    uris::PROCEDURE_ALREADY_EXISTS,
                    format!(
                        "procedure \"{procedure}\" is already registered with another invocation policy than \"{}\"",
                        invoke.as_str()
                    ),
                ),
            })?;
        Ok(outcome)
    }

    pub(super) fn on_unregister(&mut self, from: Origin, request: Id, registration: Id) {
        let (conn, session_id) = (from.conn, from.session);
        let is_mine = self.rpc.dealer.is_callee(conn, registration);
        let deleted = if is_mine {
            self.rpc.dealer.unregister(conn, registration)
        } else {
            None
        };
        let Some(deleted) = deleted else {
            let text = format!("session has no registration with ID {registration}");
            return self.send_error(
                conn,
                code::UNREGISTER,
                request,
                uris::NO_SUCH_REGISTRATION,
                &text,
            );
        };
        self.send(
            conn,
            &Message::Unregistered {
                request,
                details: None,
            },
        );
        let args = vec![Value::from(session_id), Value::from(registration)];
        self.publish_meta(topic::REG_ON_UNREGISTER, args.clone(), CountKind::Checked);
        if deleted {
            self.publish_meta(topic::REG_ON_DELETE, args, CountKind::Checked);
        }
    }

    pub(super) fn on_call(
        &mut self,
        from: Origin,
        request: Id,
        options: Dict,
        procedure: String,
        args: Option<List>,
        kwargs: Option<Dict>,
    ) {
        if let Err(e) = self.call(from, request, options, &procedure, args, kwargs) {
            self.send_error(from.conn, code::CALL, request, e.uri, &e.text);
        }
    }

    pub(super) fn call(
        &mut self,
        from: Origin,
        request: Id,
        options: Dict,
        procedure: &str,
        args: Option<List>,
        kwargs: Option<Dict>,
    ) -> Result<(), RequestError> {
        self.check_uri(procedure, MatchPolicy::Exact)?;
        let conn = from.conn;
        let (_, decision) = self.authorize(&from, procedure, Action::Call)?;
        let progress = opt_bool(&options, "progress", "CALL")?.unwrap_or(false);
        if let Some(key) = self.rpc.calls.of_call(conn, request) {
            return self.continue_progressive_call(conn, request, key, progress, args, kwargs);
        }
        if procedure.starts_with("wamp.") && self.options.enable_meta_api {
            if let Some(result) = self.meta_call(conn, procedure, args, kwargs) {
                let value = result?;
                self.send(
                    conn,
                    &Message::Result {
                        request,
                        details: Dict::new(),
                        args: Some(vec![value]),
                        kwargs: None,
                    },
                );
                return Ok(());
            }
            return Err(RequestError::new(
                uris::NO_SUCH_PROCEDURE,
                format!("no callee registered for procedure \"{procedure}\""),
            ));
        }
        let max = self.session_limits.max_calls_in_flight;
        if self.rpc.calls.in_flight_of(conn) >= max {
            let s = self.sender(conn)?;
            return Err(RequestError::limit_exceeded(
                s,
                "calls in flight",
                max,
                "wait for a result (or cancel a call) before calling again",
                self.now,
            ));
        }
        let receive_progress = opt_bool(&options, "receive_progress", "CALL")?.unwrap_or(false);
        let disclose_me = opt_bool(&options, "disclose_me", "CALL")?.unwrap_or(false);
        let timeout_ms = match options.get("timeout") {
            None | Some(Value::Null) => 0,
            Some(v) => v.as_u64().ok_or_else(|| {
                RequestError::new(
                    uris::INVALID_ARGUMENT,
                    format!(
                        "CALL option timeout must be a non-negative integer (milliseconds), found {}",
                        v.type_name()
                    ),
                )
            })?,
        };
        let no_callee = || {
            RequestError::new(
                uris::NO_SUCH_PROCEDURE,
                format!("no callee registered for procedure \"{procedure}\""),
            )
        };
        let (registration, callee) = self.rpc.route(procedure).ok_or_else(no_callee)?;
        let Some(reg) = self.rpc.dealer.get(registration) else {
            return Err(no_callee());
        };
        let mut details = Dict::new();
        super::pubsub::copy_passthru(&options, &mut details);
        if reg.policy != MatchPolicy::Exact {
            details.insert("procedure".into(), Value::from(procedure));
        }
        let caller = self.sender(conn)?;
        if disclose_me || decision.disclose {
            details.insert("caller".into(), Value::from(caller.id));
            details.insert(
                "caller_authid".into(),
                Value::from(caller.identity.authid.as_str()),
            );
            details.insert(
                "caller_authrole".into(),
                Value::from(caller.identity.authrole.as_str()),
            );
        }
        let Some(callee_session) = self.sessions.get(&callee) else {
            return Err(no_callee());
        };
        let callee_id = callee_session.id;
        if receive_progress && callee_session.supports("callee", "progressive_call_results") {
            details.insert("receive_progress".into(), Value::Bool(true));
        }
        let has_ppt = options.contains_key("ppt_scheme");
        if has_ppt && !callee_session.supports("callee", "payload_passthru_mode") {
            return Err(RequestError::new(
                uris::FEATURE_NOT_SUPPORTED,
                format!("the callee of \"{procedure}\" does not support payload passthru mode"),
            ));
        }
        if progress
            && !(callee_session.supports("callee", "call_canceling")
                || callee_session.supports("callee", "call_cancelling"))
        {
            return Err(RequestError::new(
                uris::FEATURE_NOT_SUPPORTED,
                format!(
                    "the callee of \"{procedure}\" cannot be interrupted (no call_canceling), which progressive call invocations need"
                ),
            ));
        }
        if progress {
            if !callee_session.supports("callee", "progressive_call_invocations") {
                return Err(RequestError::new(
                    uris::FEATURE_NOT_SUPPORTED,
                    format!(
                        "the callee of \"{procedure}\" does not support progressive call invocations"
                    ),
                ));
            }
            details.insert("progress".into(), Value::Bool(true));
        }
        if timeout_ms > 0 {
            details.insert("timeout".into(), Value::from(timeout_ms));
        }
        let key = self.rpc.calls.start(
            callee,
            Invocation {
                caller: Caller::Session(conn),
                call_request: request,
                registration,
                receive_progress,
                caller_progress: progress,
                interrupted: false,
                frozen_details: progress.then(|| details.clone()),
            },
        );
        if timeout_ms > 0 {
            self.timers.insert(Timer {
                at: self.now + std::time::Duration::from_millis(timeout_ms),
                conn: callee,
                session: callee_id,
                kind: TimerKind::CallTimeout,
                generation: key.request,
            });
        }
        self.send(
            callee,
            &Message::Invocation {
                request: key.request,
                registration,
                details,
                args,
                kwargs,
            },
        );
        Ok(())
    }

    /// A further CALL with the request id of a progressive call invocation in flight: forwarded
    /// as an INVOCATION with the same id; the one without `progress` is the last.
    fn continue_progressive_call(
        &mut self,
        conn: ConnId,
        request: Id,
        key: InvocationKey,
        progress: bool,
        args: Option<List>,
        kwargs: Option<Dict>,
    ) -> Result<(), RequestError> {
        let Some(inv) = self.rpc.calls.get_mut(key) else {
            return Err(RequestError::new(
                uris::INVALID_ARGUMENT,
                format!("a call with request ID {request} is already in flight on this session"),
            ));
        };
        if !inv.caller_progress || inv.caller != Caller::Session(conn) {
            return Err(RequestError::new(
                uris::INVALID_ARGUMENT,
                format!(
                    "a call with request ID {request} is already in flight on this session and is not a progressive call invocation"
                ),
            ));
        }
        inv.caller_progress = progress;
        let registration = inv.registration;
        // Every INVOCATION of the call repeats the first one's details (frozen options).
        let mut details = inv.frozen_details.clone().unwrap_or_default();
        details.remove("progress");
        if progress {
            details.insert("progress".into(), Value::Bool(true));
        }
        self.send(
            key.callee,
            &Message::Invocation {
                request: key.request,
                registration,
                details,
                args,
                kwargs,
            },
        );
        Ok(())
    }

    /// CANCEL from a caller.
    pub(super) fn on_cancel(&mut self, conn: ConnId, request: Id, options: Dict) {
        let mode = match options.get("mode") {
            None | Some(Value::Null) => CancelMode::KillNoWait,
            Some(Value::Str(m)) => match CancelMode::parse(m) {
                Some(mode) => mode,
                None => {
                    let text = format!(
                        "CANCEL option mode must be skip, kill or killnowait; found \"{m}\""
                    );
                    return self.send_error(
                        conn,
                        code::CANCEL,
                        request,
                        uris::INVALID_ARGUMENT,
                        &text,
                    );
                }
            },
            Some(other) => {
                let text = format!(
                    "CANCEL option mode must be a string, found {}",
                    other.type_name()
                );
                return self.send_error(conn, code::CANCEL, request, uris::INVALID_ARGUMENT, &text);
            }
        };
        let Some(key) = self.rpc.calls.of_call(conn, request) else {
            // The call has just finished (its answer crossed the CANCEL): nothing to do.
            debug!(conn, request, "CANCEL for a call no longer in flight");
            return;
        };
        let callee_cancels = self.sessions.get(&key.callee).is_some_and(|s| {
            s.supports("callee", "call_canceling") || s.supports("callee", "call_cancelling")
        });
        // A callee that cannot be interrupted gets the skip treatment.
        let mode = if callee_cancels {
            mode
        } else {
            CancelMode::Skip
        };
        self.cancel_invocation(key, mode, "the call was canceled by the caller");
    }

    /// Cancels an invocation in flight: INTERRUPT for the callee unless `skip`, and ERROR
    /// `wamp.error.canceled` for the caller now unless `kill` (then the callee's answer goes on).
    pub(super) fn cancel_invocation(&mut self, key: InvocationKey, mode: CancelMode, text: &str) {
        let Some(inv) = self.rpc.calls.get_mut(key) else {
            return;
        };
        if inv.interrupted {
            return;
        }
        inv.interrupted = true;
        let (caller, call_request) = (inv.caller, inv.call_request);
        if mode != CancelMode::Skip {
            let interrupt = Message::Interrupt {
                request: key.request,
                options: dict! {"mode" => mode.as_str(), "reason" => uris::CANCELED},
            };
            self.send(key.callee, &interrupt);
        }
        if mode != CancelMode::Kill {
            self.finish_call(key);
            self.reply_to_caller(caller, call_error(call_request, uris::CANCELED, text));
        }
    }

    /// Ends the calls of a leaving session: those it serves fail with `wamp.error.canceled`;
    /// those it made are forgotten, and their callees interrupted if they can be.
    pub(super) fn end_calls_of(&mut self, conn: ConnId) {
        // The calls it made are listed before those it serves are failed, so that a call it
        // made to itself is treated as both.
        let made = self.rpc.calls.made_by(conn);
        let served = self.rpc.calls.served_by(conn);
        for (_, call) in served {
            let text = "the callee left before it answered";
            let error = call_error(call.call_request, uris::CANCELED, text);
            self.reply_to_caller(call.caller, error);
        }
        for key in made {
            // The caller is gone: a callee that can be interrupted is told; its answer (if it
            // still comes) is dropped.
            let interruptible = self.sessions.get(&key.callee).is_some_and(|c| {
                c.supports("callee", "call_canceling") || c.supports("callee", "call_cancelling")
            });
            let interrupted = self.rpc.calls.get(key).is_some_and(|i| i.interrupted);
            if interruptible && !interrupted {
                let interrupt = Message::Interrupt {
                    request: key.request,
                    options: dict! {"mode" => "killnowait", "reason" => uris::CANCELED},
                };
                self.send(key.callee, &interrupt);
            }
            self.finish_call(key);
        }
    }

    /// Forgets a finished call (answered, canceled, its caller gone) and disarms its timeout.
    fn finish_call(&mut self, key: InvocationKey) -> Option<Invocation> {
        self.timers.remove(TimerKey::call(key.callee, key.request));
        self.rpc.calls.remove(key)
    }

    /// A call's `timeout` expired.
    pub(super) fn handle_call_timeout(&mut self, callee: ConnId, invocation: Id) {
        let key = InvocationKey {
            callee,
            request: invocation,
        };
        if self.rpc.calls.get(key).is_none() {
            return;
        }
        let callee_cancels = self.sessions.get(&callee).is_some_and(|s| {
            s.supports("callee", "call_canceling") || s.supports("callee", "call_cancelling")
        });
        let mode = if callee_cancels {
            CancelMode::KillNoWait
        } else {
            CancelMode::Skip
        };
        self.cancel_invocation(key, mode, "the call timed out");
    }

    pub(super) fn on_yield(
        &mut self,
        conn: ConnId,
        request: Id,
        options: Dict,
        args: Option<List>,
        kwargs: Option<Dict>,
    ) {
        let progress = options
            .get("progress")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let key = InvocationKey {
            callee: conn,
            request,
        };
        let Some(call) = self.rpc.calls.get(key) else {
            // The caller left or the call was canceled: a late YIELD is dropped without harm.
            debug!(conn, request, "YIELD for an invocation no longer pending");
            return;
        };
        let (caller, call_request) = (call.caller, call.call_request);
        let mut details = Dict::new();
        super::pubsub::copy_passthru(&options, &mut details);
        if progress && call.receive_progress {
            details.insert("progress".into(), Value::Bool(true));
        } else {
            if progress {
                // The caller did not ask for progressive results: drop the progress.
                return;
            }
            self.finish_call(key);
        }
        self.reply_to_caller(
            caller,
            Message::Result {
                request: call_request,
                details,
                args,
                kwargs,
            },
        );
    }

    pub(super) fn on_invocation_error(
        &mut self,
        conn: ConnId,
        request: Id,
        error: String,
        args: Option<List>,
        kwargs: Option<Dict>,
    ) {
        let key = InvocationKey {
            callee: conn,
            request,
        };
        let Some(call) = self.finish_call(key) else {
            debug!(conn, request, "ERROR for an invocation no longer pending");
            return;
        };
        let (caller, call_request) = (call.caller, call.call_request);
        self.reply_to_caller(
            caller,
            Message::Error {
                request_type: code::CALL,
                request: call_request,
                details: Dict::new(),
                error,
                args,
                kwargs,
            },
        );
    }

    /// Sends a RESULT or ERROR to the caller of an invocation: a session, or the router itself
    /// for an internal call (a dynamic authenticator or authorizer), whose waiter gets it.
    pub(super) fn reply_to_caller(&mut self, caller: Caller, msg: Message) {
        if let Caller::Session(conn) = caller {
            return self.send(conn, &msg);
        }
        let (request, outcome) = match msg {
            Message::Result {
                request,
                details,
                args,
                kwargs,
            } => {
                if details.get("progress").and_then(Value::as_bool) == Some(true) {
                    return;
                }
                (request, Ok(CallReturn { args, kwargs }))
            }
            Message::Error {
                request,
                error,
                args,
                kwargs,
                ..
            } => (
                request,
                Err(CallFailure {
                    error,
                    args,
                    kwargs,
                }),
            ),
            _ => return,
        };
        if let Some(reply) = self.rpc.finish_internal_call(request) {
            self.effects.push_back(Effect::Answer { reply, outcome });
        }
    }

    /// A call made by the router itself (from this or another realm): routed like a CALL; the
    /// answer comes out of [`Realm::poll_effect`] as [`Effect::Answer`] with `reply`, the
    /// caller's token. No callee: answered at once with `wamp.error.no_such_procedure`.
    pub fn handle_internal_call(
        &mut self,
        procedure: &str,
        args: List,
        kwargs: Option<Dict>,
        reply: ReplyToken,
        now: std::time::Instant,
    ) {
        self.now = now;
        let target = self.rpc.route(procedure);
        let Some((registration, callee)) = target else {
            let outcome = Err(CallFailure {
                error: uris::NO_SUCH_PROCEDURE.into(),
                args: Some(vec![Value::from(format!(
                    "no callee registered for procedure \"{procedure}\""
                ))]),
                kwargs: None,
            });
            self.effects.push_back(Effect::Answer { reply, outcome });
            return;
        };
        let token = self.rpc.start_internal_call(reply);
        if !self.sessions.contains_key(&callee) {
            return;
        }
        let key = self.rpc.calls.start(
            callee,
            Invocation {
                caller: Caller::Router,
                call_request: token,
                registration,
                receive_progress: false,
                caller_progress: false,
                interrupted: false,
                frozen_details: None,
            },
        );
        let mut details = dict! {
            "caller" => self.service_id,
            "caller_authid" => SERVICE_AUTHID,
            "caller_authrole" => TRUSTED_ROLE,
        };
        let pattern = self
            .rpc
            .dealer
            .get(registration)
            .is_some_and(|r| r.policy != MatchPolicy::Exact);
        if pattern {
            details.insert("procedure".into(), Value::from(procedure));
        }
        let msg = Message::Invocation {
            request: key.request,
            registration,
            details,
            args: Some(args),
            kwargs,
        };
        self.send(callee, &msg);
        self.reap();
    }
}

pub(super) fn registration_info(r: &crate::dealer::Registration) -> Dict {
    dict! {
        "id" => r.id,
        "created" => r.created.as_str(),
        "uri" => r.uri.as_str(),
        "match" => r.policy.as_str(),
        "invoke" => r.invoke.as_str(),
    }
}

/// An ERROR answering a CALL.
pub(super) fn call_error(request: Id, uri: &str, text: &str) -> Message {
    Message::error(code::CALL, request, uri, text)
}
