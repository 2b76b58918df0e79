//! A WAMP session on top of a [`Transport`]: join, subscribe, publish, call, register, answer
//! invocations, leave.
//!
//! Every operation that waits for a reply keeps the messages that arrive meanwhile (events,
//! invocations, other replies) in an inbox, in arrival order; [`Session::recv`],
//! [`Session::next_event`] and [`Session::next_invocation`] take from the inbox first, so nothing
//! is lost or reordered. A GOODBYE or ABORT from the router ends any wait with
//! [`Error::Goodbye`] / [`Error::Aborted`] and stays in the inbox, so a test can answer it.
//!
//! Every wait is bounded by the session's timeout (10 s by default, see
//! [`Session::set_timeout`]).

use std::collections::VecDeque;
use std::time::Duration;

use wamp_proto::message::code;
use wamp_proto::{dict, uris, Dict, Id, IdSequence, List, Message, Serializer, Value};

use crate::error::{Error, Result};
use crate::traffic::Traffic;
use crate::transport::{ConnectOptions, Transport};

/// The router's WELCOME.
#[derive(Debug, Clone, PartialEq)]
pub struct Welcome {
    /// The session id the router assigned.
    pub session: Id,
    /// WELCOME.Details: the router's roles, the session's `authid`, `authrole`, ...
    pub details: Dict,
}

/// An EVENT, with absent `args`/`kwargs` as empty.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The subscription (as SUBSCRIBED gave it) the event was delivered for.
    pub subscription: Id,
    /// The publication's id (the same for every receiver of one publication).
    pub publication: Id,
    /// EVENT.Details (`topic` for pattern subscriptions, `publisher` when disclosed, ...).
    pub details: Dict,
    /// The publication's positional arguments (empty when absent).
    pub args: List,
    /// The publication's keyword arguments (empty when absent).
    pub kwargs: Dict,
}

/// An INVOCATION to answer with [`Session::yield_result`] or [`Session::yield_error`].
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    /// The INVOCATION's request id, to echo in the YIELD or ERROR.
    pub request: Id,
    /// The registration (as REGISTERED gave it) the call was routed to.
    pub registration: Id,
    /// INVOCATION.Details (`procedure` for pattern registrations, `caller` when disclosed,
    /// `receive_progress`, ...).
    pub details: Dict,
    /// The call's positional arguments (empty when absent).
    pub args: List,
    /// The call's keyword arguments (empty when absent).
    pub kwargs: Dict,
}

/// The RESULT of a call.
#[derive(Debug, Clone, PartialEq)]
pub struct CallResult {
    /// RESULT.Details.
    pub details: Dict,
    /// The result's positional arguments (empty when absent).
    pub args: List,
    /// The result's keyword arguments (empty when absent).
    pub kwargs: Dict,
}

/// A WAMP client session (and the connection it runs on; the connection can carry one session
/// after another).
#[derive(Debug)]
pub struct Session {
    transport: Transport,
    inbox: VecDeque<Message>,
    requests: IdSequence,
    session_id: Option<Id>,
    timeout: Duration,
}

/// HELLO.Details.roles of this client: the four client roles with the features it handles.
pub fn client_roles() -> Dict {
    let features = |f: &[&str]| {
        let mut d = Dict::new();
        for k in f {
            d.insert((*k).to_owned(), Value::Bool(true));
        }
        Value::Dict(dict! {"features" => Value::Dict(d)})
    };
    dict! {
        "publisher" => features(&["publisher_exclusion", "publisher_identification", "subscriber_blackwhite_listing"]),
        "subscriber" => features(&["pattern_based_subscription", "publisher_identification"]),
        "caller" => features(&["caller_identification", "progressive_call_results"]),
        "callee" => features(&["caller_identification", "pattern_based_registration", "shared_registration", "progressive_call_results"]),
    }
}

/// The default HELLO.Details: roles, anonymous authentication, agent.
pub fn hello_details() -> Dict {
    dict! {
        "roles" => Value::Dict(client_roles()),
        "authmethods" => Value::List(vec!["anonymous".into()]),
        "agent" => "turnstile-client",
    }
}

fn or_empty_list(l: Option<List>) -> List {
    l.unwrap_or_default()
}

fn or_empty_dict(d: Option<Dict>) -> Dict {
    d.unwrap_or_default()
}

impl Event {
    /// The EVENT's content, if `msg` is one.
    pub fn from_message(msg: Message) -> Option<Event> {
        match msg {
            Message::Event {
                subscription,
                publication,
                details,
                args,
                kwargs,
            } => Some(Event {
                subscription,
                publication,
                details,
                args: or_empty_list(args),
                kwargs: or_empty_dict(kwargs),
            }),
            _ => None,
        }
    }
}

fn wamp_error(msg: Message) -> Error {
    match msg {
        Message::Error {
            error,
            args,
            kwargs,
            ..
        } => Error::Wamp {
            error,
            args: or_empty_list(args),
            kwargs: or_empty_dict(kwargs),
        },
        other => Error::Unexpected(other.name().to_owned()),
    }
}

/// Whether `msg` is the ERROR answering request `request` of type `request_type`.
fn is_error_for(msg: &Message, request_type: u64, request: Id) -> bool {
    matches!(msg, Message::Error { request_type: t, request: r, .. } if *t == request_type && *r == request)
}

/// The error a GOODBYE or ABORT from the router means for a pending wait.
fn closing_error(msg: &Message) -> Option<Error> {
    match msg {
        Message::Goodbye { details, reason } => Some(Error::Goodbye {
            reason: reason.clone(),
            details: details.clone(),
        }),
        Message::Abort {
            details, reason, ..
        } => Some(Error::Aborted {
            reason: reason.clone(),
            details: details.clone(),
        }),
        _ => None,
    }
}

impl Session {
    /// Connects (no session yet: call [`Session::join`]).
    pub async fn connect(url: &str, serializer: Serializer) -> Result<Session> {
        Ok(Self::new(Transport::connect(url, serializer).await?))
    }

    /// Connects with options (no session yet).
    pub async fn connect_with(
        url: &str,
        serializer: Serializer,
        options: &ConnectOptions,
    ) -> Result<Session> {
        Ok(Self::new(
            Transport::connect_with(url, serializer, options).await?,
        ))
    }

    /// A session on an open transport.
    pub fn new(transport: Transport) -> Session {
        Session {
            transport,
            inbox: VecDeque::new(),
            requests: IdSequence::new(),
            session_id: None,
            timeout: Duration::from_secs(10),
        }
    }

    /// Bounds every wait for a reply, event or invocation.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// The session id, while joined.
    pub fn id(&self) -> Option<Id> {
        self.session_id
    }

    /// The connection the session runs on.
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// The connection the session runs on, to send or receive on it directly (bypassing the
    /// inbox).
    pub fn transport_mut(&mut self) -> &mut Transport {
        &mut self.transport
    }

    /// Everything the connection sent and received.
    pub fn traffic(&self) -> &Traffic {
        self.transport.traffic()
    }

    /// Messages received but not yet taken.
    pub fn inbox(&self) -> &VecDeque<Message> {
        &self.inbox
    }

    /// Empties the inbox, returning what it held.
    pub fn take_inbox(&mut self) -> Vec<Message> {
        self.inbox.drain(..).collect()
    }

    // ----- low level -----

    /// Sends one message as is (recorded in the traffic).
    pub async fn send(&mut self, msg: &Message) -> Result<()> {
        self.transport.send(msg).await
    }

    /// The next message: from the inbox, else from the connection (not bounded by the session's
    /// timeout); `None` once the connection is closed.
    pub async fn recv(&mut self) -> Result<Option<Message>> {
        if let Some(msg) = self.inbox.pop_front() {
            return Ok(Some(msg));
        }
        self.transport.recv().await
    }

    /// [`Session::recv`] for at most `limit`.
    pub async fn recv_timeout(&mut self, limit: Duration) -> Result<Option<Message>> {
        crate::timeout(limit, self.recv()).await
    }

    /// Waits for the first message `pick` accepts, from the inbox or the connection; what it
    /// does not accept goes to the inbox. A GOODBYE or ABORT that is not picked ends the wait.
    pub async fn wait_for(&mut self, pick: impl Fn(&Message) -> bool) -> Result<Message> {
        if let Some(i) = self.inbox.iter().position(&pick) {
            return Ok(self.inbox.remove(i).expect("position is in range"));
        }
        if let Some(e) = self.inbox.iter().find_map(closing_error) {
            return Err(e);
        }
        let limit = self.timeout;
        crate::timeout(limit, async {
            loop {
                let Some(msg) = self.transport.recv().await? else {
                    return Err(Error::ConnectionClosed);
                };
                if pick(&msg) {
                    return Ok(msg);
                }
                let closing = closing_error(&msg);
                self.inbox.push_back(msg);
                if let Some(e) = closing {
                    return Err(e);
                }
            }
        })
        .await
    }

    fn next_request(&mut self) -> Id {
        self.requests.next()
    }

    fn joined(&self) -> Result<Id> {
        self.session_id.ok_or(Error::NotJoined)
    }

    // ----- session life cycle -----

    /// HELLO with the default details ([`hello_details`]); waits for WELCOME.
    pub async fn join(&mut self, realm: &str) -> Result<Welcome> {
        self.join_with(realm, hello_details()).await
    }

    /// HELLO with these details; waits for WELCOME ([`Error::Aborted`] on ABORT).
    pub async fn join_with(&mut self, realm: &str, details: Dict) -> Result<Welcome> {
        if self.session_id.is_some() {
            return Err(Error::Unexpected("join while a session is open".into()));
        }
        self.send(&Message::Hello {
            realm: realm.to_owned(),
            details,
        })
        .await?;
        let reply = self
            .wait_for(|m| {
                matches!(
                    m,
                    Message::Welcome { .. } | Message::Abort { .. } | Message::Challenge { .. }
                )
            })
            .await?;
        match reply {
            Message::Welcome { session, details } => {
                self.session_id = Some(session);
                self.requests = IdSequence::new();
                Ok(Welcome { session, details })
            }
            Message::Abort {
                details, reason, ..
            } => Err(Error::Aborted { reason, details }),
            other => Err(Error::Unexpected(format!(
                "{} (authentication is not supported by this client)",
                other.name()
            ))),
        }
    }

    /// HELLO as `authid` with ticket authentication, answering the CHALLENGE with `ticket`;
    /// waits for WELCOME ([`Error::Aborted`] on ABORT).
    pub async fn join_with_ticket(
        &mut self,
        realm: &str,
        authid: &str,
        ticket: &str,
    ) -> Result<Welcome> {
        let mut details = hello_details();
        details.insert("authmethods".into(), Value::List(vec!["ticket".into()]));
        details.insert("authid".into(), authid.into());
        match self.join_with(realm, details).await {
            Err(Error::Unexpected(text)) if text.starts_with("CHALLENGE") => {}
            other => return other,
        }
        self.send(&Message::Authenticate {
            signature: ticket.to_owned(),
            extra: Dict::new(),
        })
        .await?;
        match self
            .wait_for(|m| matches!(m, Message::Welcome { .. } | Message::Abort { .. }))
            .await?
        {
            Message::Welcome { session, details } => {
                self.session_id = Some(session);
                self.requests = IdSequence::new();
                Ok(Welcome { session, details })
            }
            Message::Abort {
                details, reason, ..
            } => Err(Error::Aborted { reason, details }),
            other => Err(Error::Unexpected(other.name().to_owned())),
        }
    }

    /// GOODBYE `wamp.close.close_realm`; waits for the router's GOODBYE and returns its reason.
    /// The connection stays open for another [`Session::join`].
    pub async fn leave(&mut self) -> Result<String> {
        self.joined()?;
        self.send(&Message::Goodbye {
            details: Dict::new(),
            reason: uris::CLOSE_REALM.into(),
        })
        .await?;
        self.session_id = None;
        match self
            .wait_for(|m| matches!(m, Message::Goodbye { .. }))
            .await?
        {
            Message::Goodbye { reason, .. } => Ok(reason),
            other => Err(Error::Unexpected(other.name().to_owned())),
        }
    }

    /// Waits for a GOODBYE from the router (kill, shutdown) and returns its reason and details;
    /// answer it with [`Session::answer_goodbye`].
    pub async fn wait_goodbye(&mut self) -> Result<(String, Dict)> {
        match self
            .wait_for(|m| matches!(m, Message::Goodbye { .. }))
            .await?
        {
            Message::Goodbye { reason, details } => Ok((reason, details)),
            other => Err(Error::Unexpected(other.name().to_owned())),
        }
    }

    /// Answers the router's GOODBYE with GOODBYE `wamp.close.goodbye_and_out`: the session is
    /// over.
    pub async fn answer_goodbye(&mut self) -> Result<()> {
        self.session_id = None;
        self.send(&Message::Goodbye {
            details: Dict::new(),
            reason: uris::CLOSE_GOODBYE_AND_OUT.into(),
        })
        .await
    }

    /// Closes the connection gracefully (see [`Transport::close`]). Drop the session instead to
    /// lose the connection abruptly.
    pub async fn close(&mut self) -> Result<()> {
        self.session_id = None;
        self.transport.close().await
    }

    // ----- PubSub -----

    /// SUBSCRIBE; returns the subscription id.
    pub async fn subscribe(&mut self, topic: &str, options: Dict) -> Result<Id> {
        self.joined()?;
        let request = self.next_request();
        self.send(&Message::Subscribe {
            request,
            options,
            topic: topic.to_owned(),
        })
        .await?;
        let reply = self
            .wait_for(|m| {
                matches!(m, Message::Subscribed { request: r, .. } if *r == request)
                    || is_error_for(m, code::SUBSCRIBE, request)
            })
            .await?;
        match reply {
            Message::Subscribed { subscription, .. } => Ok(subscription),
            other => Err(wamp_error(other)),
        }
    }

    /// UNSUBSCRIBE; waits for UNSUBSCRIBED.
    pub async fn unsubscribe(&mut self, subscription: Id) -> Result<()> {
        self.joined()?;
        let request = self.next_request();
        self.send(&Message::Unsubscribe {
            request,
            subscription,
        })
        .await?;
        let reply = self
            .wait_for(|m| {
                matches!(m, Message::Unsubscribed { request: r, .. } if *r == request)
                    || is_error_for(m, code::UNSUBSCRIBE, request)
            })
            .await?;
        match reply {
            Message::Unsubscribed { .. } => Ok(()),
            other => Err(wamp_error(other)),
        }
    }

    /// PUBLISH. With `"acknowledge": true` in `options` it waits for PUBLISHED and returns the
    /// publication id; otherwise it returns `None` at once.
    pub async fn publish(
        &mut self,
        topic: &str,
        args: Option<List>,
        kwargs: Option<Dict>,
        options: Dict,
    ) -> Result<Option<Id>> {
        self.joined()?;
        let acknowledge = options
            .get("acknowledge")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let request = self.next_request();
        self.send(&Message::Publish {
            request,
            options,
            topic: topic.to_owned(),
            args,
            kwargs,
        })
        .await?;
        if !acknowledge {
            return Ok(None);
        }
        let reply = self
            .wait_for(|m| {
                matches!(m, Message::Published { request: r, .. } if *r == request)
                    || is_error_for(m, code::PUBLISH, request)
            })
            .await?;
        match reply {
            Message::Published { publication, .. } => Ok(Some(publication)),
            other => Err(wamp_error(other)),
        }
    }

    /// The next EVENT (from the inbox first).
    pub async fn next_event(&mut self) -> Result<Event> {
        let msg = self
            .wait_for(|m| matches!(m, Message::Event { .. }))
            .await?;
        Ok(Event::from_message(msg).expect("picked an EVENT"))
    }

    /// The next EVENT if one arrives within `quiet`, else `None`.
    pub async fn try_next_event(&mut self, quiet: Duration) -> Result<Option<Event>> {
        match crate::timeout(quiet, self.next_event()).await {
            Ok(e) => Ok(Some(e)),
            Err(Error::Timeout(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    // ----- RPC -----

    /// REGISTER; returns the registration id.
    pub async fn register(&mut self, procedure: &str, options: Dict) -> Result<Id> {
        self.joined()?;
        let request = self.next_request();
        self.send(&Message::Register {
            request,
            options,
            procedure: procedure.to_owned(),
        })
        .await?;
        let reply = self
            .wait_for(|m| {
                matches!(m, Message::Registered { request: r, .. } if *r == request)
                    || is_error_for(m, code::REGISTER, request)
            })
            .await?;
        match reply {
            Message::Registered { registration, .. } => Ok(registration),
            other => Err(wamp_error(other)),
        }
    }

    /// UNREGISTER; waits for UNREGISTERED.
    pub async fn unregister(&mut self, registration: Id) -> Result<()> {
        self.joined()?;
        let request = self.next_request();
        self.send(&Message::Unregister {
            request,
            registration,
        })
        .await?;
        let reply = self
            .wait_for(|m| {
                matches!(m, Message::Unregistered { request: r, .. } if *r == request)
                    || is_error_for(m, code::UNREGISTER, request)
            })
            .await?;
        match reply {
            Message::Unregistered { .. } => Ok(()),
            other => Err(wamp_error(other)),
        }
    }

    /// CALL and wait for its RESULT (a final one: progressive results are skipped). For a
    /// callee driven by the same task, use [`Session::start_call`] and
    /// [`Session::call_result`].
    pub async fn call(
        &mut self,
        procedure: &str,
        args: Option<List>,
        kwargs: Option<Dict>,
        options: Dict,
    ) -> Result<CallResult> {
        let request = self.start_call(procedure, args, kwargs, options).await?;
        self.call_result(request).await
    }

    /// Sends CALL; returns its request id for [`Session::call_result`].
    pub async fn start_call(
        &mut self,
        procedure: &str,
        args: Option<List>,
        kwargs: Option<Dict>,
        options: Dict,
    ) -> Result<Id> {
        self.joined()?;
        let request = self.next_request();
        self.send(&Message::Call {
            request,
            options,
            procedure: procedure.to_owned(),
            args,
            kwargs,
        })
        .await?;
        Ok(request)
    }

    /// Waits for the final RESULT (or ERROR) of call `request`.
    pub async fn call_result(&mut self, request: Id) -> Result<CallResult> {
        loop {
            let reply = self
                .wait_for(|m| {
                    matches!(m, Message::Result { request: r, .. } if *r == request)
                        || is_error_for(m, code::CALL, request)
                })
                .await?;
            match reply {
                Message::Result {
                    details,
                    args,
                    kwargs,
                    ..
                } => {
                    if details.get("progress").and_then(Value::as_bool) == Some(true) {
                        continue;
                    }
                    return Ok(CallResult {
                        details,
                        args: or_empty_list(args),
                        kwargs: or_empty_dict(kwargs),
                    });
                }
                other => return Err(wamp_error(other)),
            }
        }
    }

    /// The next INVOCATION (from the inbox first).
    pub async fn next_invocation(&mut self) -> Result<Invocation> {
        match self
            .wait_for(|m| matches!(m, Message::Invocation { .. }))
            .await?
        {
            Message::Invocation {
                request,
                registration,
                details,
                args,
                kwargs,
            } => Ok(Invocation {
                request,
                registration,
                details,
                args: or_empty_list(args),
                kwargs: or_empty_dict(kwargs),
            }),
            other => Err(Error::Unexpected(other.name().to_owned())),
        }
    }

    /// YIELD the result of invocation `request`.
    pub async fn yield_result(
        &mut self,
        request: Id,
        args: Option<List>,
        kwargs: Option<Dict>,
    ) -> Result<()> {
        self.send(&Message::Yield {
            request,
            options: Dict::new(),
            args,
            kwargs,
        })
        .await
    }

    /// Answers invocation `request` with ERROR `error`.
    pub async fn yield_error(
        &mut self,
        request: Id,
        error: &str,
        args: Option<List>,
    ) -> Result<()> {
        self.send(&Message::Error {
            request_type: code::INVOCATION,
            request,
            details: Dict::new(),
            error: error.to_owned(),
            args,
            kwargs: None,
        })
        .await
    }
}
