//! The wire layout of messages, shared by all serializers: a [`Message`] as its list of elements
//! (for encoding) and a decoded [`Value`] list checked strictly and turned into a [`Message`].

use crate::id::is_valid_id;
use crate::message::{code, code_name, is_passthru};
use crate::value::{Dict, List, Value};
use crate::{DecodeError, Message};

/// One element of a message on the wire, borrowed from the [`Message`].
#[derive(Clone, Copy, Debug)]
pub(crate) enum Elem<'a> {
    UInt(u64),
    Str(&'a str),
    Dict(&'a Dict),
    List(&'a [Value]),
    /// A passthru payload (binary or string).
    Value(&'a Value),
}

/// The elements of one message, the type code first (at most 7 elements: ERROR with kwargs).
pub(crate) struct Elems<'a> {
    items: [Elem<'a>; 7],
    len: usize,
}

impl<'a> Elems<'a> {
    fn new(code: u64) -> Self {
        Elems {
            items: [Elem::UInt(code); 7],
            len: 1,
        }
    }
    fn push(&mut self, e: Elem<'a>) {
        self.items[self.len] = e;
        self.len += 1;
    }
    pub(crate) fn as_slice(&self) -> &[Elem<'a>] {
        &self.items[..self.len]
    }
    /// Appends the optional Args/KwArgs (or the passthru payload) of a message.
    fn payload(&mut self, dict: &'a Dict, args: &'a Option<List>, kwargs: &'a Option<Dict>) {
        match (args, kwargs) {
            (None, None) => {}
            (Some(a), None) => match a.as_slice() {
                [p @ (Value::Bytes(_) | Value::Str(_))] if is_passthru(dict) => {
                    self.push(Elem::Value(p))
                }
                _ => self.push(Elem::List(a)),
            },
            (a, Some(k)) => {
                self.push(Elem::List(a.as_deref().unwrap_or(&[])));
                self.push(Elem::Dict(k));
            }
        }
    }
}

/// The wire elements of `msg`.
pub(crate) fn elems(msg: &Message) -> Elems<'_> {
    use Elem as E;
    let mut e = Elems::new(msg.code());
    match msg {
        Message::Hello { realm, details } => {
            e.push(E::Str(realm));
            e.push(E::Dict(details));
        }
        Message::Welcome { session, details } => {
            e.push(E::UInt(*session));
            e.push(E::Dict(details));
        }
        Message::Abort {
            details,
            reason,
            args,
            kwargs,
        } => {
            e.push(E::Dict(details));
            e.push(E::Str(reason));
            // ABORT has no passthru mode: an empty dict never declares it.
            e.payload(&EMPTY, args, kwargs);
        }
        Message::Challenge { authmethod, extra } => {
            e.push(E::Str(authmethod));
            e.push(E::Dict(extra));
        }
        Message::Authenticate { signature, extra } => {
            e.push(E::Str(signature));
            e.push(E::Dict(extra));
        }
        Message::Goodbye { details, reason } => {
            e.push(E::Dict(details));
            e.push(E::Str(reason));
        }
        Message::Error {
            request_type,
            request,
            details,
            error,
            args,
            kwargs,
        } => {
            e.push(E::UInt(*request_type));
            e.push(E::UInt(*request));
            e.push(E::Dict(details));
            e.push(E::Str(error));
            e.payload(details, args, kwargs);
        }
        Message::Publish {
            request,
            options,
            topic,
            args,
            kwargs,
        } => {
            e.push(E::UInt(*request));
            e.push(E::Dict(options));
            e.push(E::Str(topic));
            e.payload(options, args, kwargs);
        }
        Message::Published {
            request,
            publication,
        } => {
            e.push(E::UInt(*request));
            e.push(E::UInt(*publication));
        }
        Message::Subscribe {
            request,
            options,
            topic,
        } => {
            e.push(E::UInt(*request));
            e.push(E::Dict(options));
            e.push(E::Str(topic));
        }
        Message::Subscribed {
            request,
            subscription,
        } => {
            e.push(E::UInt(*request));
            e.push(E::UInt(*subscription));
        }
        Message::Unsubscribe {
            request,
            subscription,
        } => {
            e.push(E::UInt(*request));
            e.push(E::UInt(*subscription));
        }
        Message::Unsubscribed { request, details } | Message::Unregistered { request, details } => {
            e.push(E::UInt(*request));
            if let Some(d) = details {
                e.push(E::Dict(d));
            }
        }
        Message::Event {
            subscription,
            publication,
            details,
            args,
            kwargs,
        } => {
            e.push(E::UInt(*subscription));
            e.push(E::UInt(*publication));
            e.push(E::Dict(details));
            e.payload(details, args, kwargs);
        }
        Message::Call {
            request,
            options,
            procedure,
            args,
            kwargs,
        } => {
            e.push(E::UInt(*request));
            e.push(E::Dict(options));
            e.push(E::Str(procedure));
            e.payload(options, args, kwargs);
        }
        Message::Cancel { request, options } | Message::Interrupt { request, options } => {
            e.push(E::UInt(*request));
            e.push(E::Dict(options));
        }
        Message::Result {
            request,
            details,
            args,
            kwargs,
        } => {
            e.push(E::UInt(*request));
            e.push(E::Dict(details));
            e.payload(details, args, kwargs);
        }
        Message::Register {
            request,
            options,
            procedure,
        } => {
            e.push(E::UInt(*request));
            e.push(E::Dict(options));
            e.push(E::Str(procedure));
        }
        Message::Registered {
            request,
            registration,
        } => {
            e.push(E::UInt(*request));
            e.push(E::UInt(*registration));
        }
        Message::Unregister {
            request,
            registration,
        } => {
            e.push(E::UInt(*request));
            e.push(E::UInt(*registration));
        }
        Message::Invocation {
            request,
            registration,
            details,
            args,
            kwargs,
        } => {
            e.push(E::UInt(*request));
            e.push(E::UInt(*registration));
            e.push(E::Dict(details));
            e.payload(details, args, kwargs);
        }
        Message::Yield {
            request,
            options,
            args,
            kwargs,
        } => {
            e.push(E::UInt(*request));
            e.push(E::Dict(options));
            e.payload(options, args, kwargs);
        }
    }
    e
}

static EMPTY: Dict = Dict::new();

/// The element count range of a message type, the type code included.
fn arity(code: u64) -> (usize, usize) {
    use code::*;
    match code {
        HELLO | WELCOME | CHALLENGE | AUTHENTICATE | GOODBYE => (3, 3),
        ABORT => (3, 5),
        ERROR => (5, 7),
        PUBLISH | EVENT | CALL | INVOCATION => (4, 6),
        SUBSCRIBE | REGISTER => (4, 4),
        PUBLISHED | SUBSCRIBED | UNSUBSCRIBE | CANCEL | REGISTERED | UNREGISTER | INTERRUPT => {
            (3, 3)
        }
        UNSUBSCRIBED | UNREGISTERED => (2, 3),
        RESULT | YIELD => (3, 5),
        _ => unreachable!("arity of a known code"),
    }
}

fn shape(detail: String) -> DecodeError {
    DecodeError::Shape(detail)
}

/// Describes a value for an error message: its type, or the number for an out-of-range id.
fn found(v: &Value) -> String {
    match v {
        Value::Int(i) => format!("{i}"),
        Value::UInt(u) => format!("{u}"),
        other => other.type_name().to_owned(),
    }
}

/// Reads the elements of one message in order, with the message name for errors.
struct Reader {
    name: &'static str,
    items: std::vec::IntoIter<Value>,
    /// Index of the next element (0 is the type code).
    idx: usize,
}

impl Reader {
    fn next(&mut self) -> Option<(usize, Value)> {
        let v = self.items.next()?;
        let i = self.idx;
        self.idx += 1;
        Some((i, v))
    }
    fn must(&mut self) -> (usize, Value) {
        self.next().expect("element count was checked")
    }
    fn err(&self, idx: usize, field: &str, what: &str, v: &Value) -> DecodeError {
        let found = match v {
            Value::Int(_) | Value::UInt(_) if what.contains("integer") => found(v),
            _ => v.type_name().to_owned(),
        };
        shape(format!(
            "{}: element {idx} ({field}) must be {what}, found {found}",
            self.name
        ))
    }
    fn id(&mut self, field: &str) -> Result<u64, DecodeError> {
        let (i, v) = self.must();
        match v.as_u64() {
            Some(id) if is_valid_id(id) => Ok(id),
            _ => Err(self.err(i, field, "an id (an integer in [1, 2^53])", &v)),
        }
    }
    fn uint(&mut self, field: &str) -> Result<u64, DecodeError> {
        let (i, v) = self.must();
        v.as_u64()
            .ok_or_else(|| self.err(i, field, "a non-negative integer", &v))
    }
    fn string(&mut self, field: &str) -> Result<String, DecodeError> {
        match self.must() {
            (_, Value::Str(s)) => Ok(s),
            (i, v) => Err(self.err(i, field, "a string", &v)),
        }
    }
    fn dict(&mut self, field: &str) -> Result<Dict, DecodeError> {
        match self.must() {
            (_, Value::Dict(d)) => Ok(d),
            (i, v) => Err(self.err(i, field, "a dict", &v)),
        }
    }
    fn opt_dict(&mut self, field: &str) -> Result<Option<Dict>, DecodeError> {
        match self.next() {
            None => Ok(None),
            Some((_, Value::Dict(d))) => Ok(Some(d)),
            Some((i, v)) => Err(self.err(i, field, "a dict", &v)),
        }
    }
    /// The optional Args and KwArgs; with `dict` declaring passthru, a bare binary or string
    /// payload in place of Args (then nothing may follow it).
    fn payload(
        &mut self,
        dict: Option<&Dict>,
    ) -> Result<(Option<List>, Option<Dict>), DecodeError> {
        let args = match self.next() {
            None => return Ok((None, None)),
            Some((_, Value::List(l))) => l,
            Some((_, p @ (Value::Bytes(_) | Value::Str(_)))) if dict.is_some_and(is_passthru) => {
                if let Some((j, _)) = self.next() {
                    return Err(shape(format!(
                        "{}: element {j} is not allowed after a passthru payload",
                        self.name
                    )));
                }
                return Ok((Some(vec![p]), None));
            }
            Some((i, v)) => {
                let mut e = self.err(i, "Args", "a list", &v);
                if matches!(v, Value::Bytes(_) | Value::Str(_)) && dict.is_some() {
                    if let DecodeError::Shape(s) = &mut e {
                        s.push_str(
                            " (a passthru payload needs ppt_scheme or enc_algo in Options/Details)",
                        );
                    }
                }
                return Err(e);
            }
        };
        let kwargs = self.opt_dict("KwArgs")?;
        Ok((Some(args), kwargs))
    }
}

/// Checks a decoded value strictly and turns it into a [`Message`].
pub(crate) fn message_from_value(v: Value) -> Result<Message, DecodeError> {
    let list = match v {
        Value::List(l) if !l.is_empty() => l,
        Value::List(_) => {
            return Err(shape(
                "message must be a non-empty list, found an empty list".into(),
            ))
        }
        other => {
            return Err(shape(format!(
                "message must be a non-empty list, found {}",
                other.type_name()
            )))
        }
    };
    let code = match list[0] {
        Value::Int(i) if i >= 0 => i as u64,
        Value::Int(i) => return Err(shape(format!("unknown message type {i}"))),
        Value::UInt(u) => u,
        ref other => {
            return Err(shape(format!(
                "message type (element 0) must be an integer, found {}",
                other.type_name()
            )))
        }
    };
    let Some(name) = code_name(code) else {
        return Err(shape(format!("unknown message type {code}")));
    };
    let (min, max) = arity(code);
    let n = list.len();
    if n < min || n > max {
        let expected = match max - min {
            0 => format!("{min}"),
            1 => format!("{min} or {max}"),
            _ => format!("{min} to {max}"),
        };
        return Err(shape(format!(
            "{name}: expected {expected} elements, found {n}"
        )));
    }
    let mut items = list.into_iter();
    items.next();
    let mut r = Reader {
        name,
        items,
        idx: 1,
    };
    use code::*;
    let msg = match code {
        HELLO => Message::Hello {
            realm: r.string("Realm")?,
            details: r.dict("Details")?,
        },
        WELCOME => Message::Welcome {
            session: r.id("Session")?,
            details: r.dict("Details")?,
        },
        ABORT => {
            let details = r.dict("Details")?;
            let reason = r.string("Reason")?;
            let (args, kwargs) = r.payload(None)?;
            Message::Abort {
                details,
                reason,
                args,
                kwargs,
            }
        }
        CHALLENGE => Message::Challenge {
            authmethod: r.string("AuthMethod")?,
            extra: r.dict("Extra")?,
        },
        AUTHENTICATE => Message::Authenticate {
            signature: r.string("Signature")?,
            extra: r.dict("Extra")?,
        },
        GOODBYE => Message::Goodbye {
            details: r.dict("Details")?,
            reason: r.string("Reason")?,
        },
        ERROR => {
            let request_type = r.uint("REQUEST.Type")?;
            let request = r.id("REQUEST.Request")?;
            let details = r.dict("Details")?;
            let error = r.string("Error")?;
            let (args, kwargs) = r.payload(Some(&details))?;
            Message::Error {
                request_type,
                request,
                details,
                error,
                args,
                kwargs,
            }
        }
        PUBLISH => {
            let request = r.id("Request")?;
            let options = r.dict("Options")?;
            let topic = r.string("Topic")?;
            let (args, kwargs) = r.payload(Some(&options))?;
            Message::Publish {
                request,
                options,
                topic,
                args,
                kwargs,
            }
        }
        PUBLISHED => Message::Published {
            request: r.id("PUBLISH.Request")?,
            publication: r.id("Publication")?,
        },
        SUBSCRIBE => Message::Subscribe {
            request: r.id("Request")?,
            options: r.dict("Options")?,
            topic: r.string("Topic")?,
        },
        SUBSCRIBED => Message::Subscribed {
            request: r.id("SUBSCRIBE.Request")?,
            subscription: r.id("Subscription")?,
        },
        UNSUBSCRIBE => Message::Unsubscribe {
            request: r.id("Request")?,
            subscription: r.id("SUBSCRIBED.Subscription")?,
        },
        UNSUBSCRIBED => Message::Unsubscribed {
            request: r.id("UNSUBSCRIBE.Request")?,
            details: r.opt_dict("Details")?,
        },
        EVENT => {
            let subscription = r.id("SUBSCRIBED.Subscription")?;
            let publication = r.id("PUBLISHED.Publication")?;
            let details = r.dict("Details")?;
            let (args, kwargs) = r.payload(Some(&details))?;
            Message::Event {
                subscription,
                publication,
                details,
                args,
                kwargs,
            }
        }
        CALL => {
            let request = r.id("Request")?;
            let options = r.dict("Options")?;
            let procedure = r.string("Procedure")?;
            let (args, kwargs) = r.payload(Some(&options))?;
            Message::Call {
                request,
                options,
                procedure,
                args,
                kwargs,
            }
        }
        CANCEL => Message::Cancel {
            request: r.id("CALL.Request")?,
            options: r.dict("Options")?,
        },
        RESULT => {
            let request = r.id("CALL.Request")?;
            let details = r.dict("Details")?;
            let (args, kwargs) = r.payload(Some(&details))?;
            Message::Result {
                request,
                details,
                args,
                kwargs,
            }
        }
        REGISTER => Message::Register {
            request: r.id("Request")?,
            options: r.dict("Options")?,
            procedure: r.string("Procedure")?,
        },
        REGISTERED => Message::Registered {
            request: r.id("REGISTER.Request")?,
            registration: r.id("Registration")?,
        },
        UNREGISTER => Message::Unregister {
            request: r.id("Request")?,
            registration: r.id("REGISTERED.Registration")?,
        },
        UNREGISTERED => Message::Unregistered {
            request: r.id("UNREGISTER.Request")?,
            details: r.opt_dict("Details")?,
        },
        INVOCATION => {
            let request = r.id("Request")?;
            let registration = r.id("REGISTERED.Registration")?;
            let details = r.dict("Details")?;
            let (args, kwargs) = r.payload(Some(&details))?;
            Message::Invocation {
                request,
                registration,
                details,
                args,
                kwargs,
            }
        }
        INTERRUPT => Message::Interrupt {
            request: r.id("INVOCATION.Request")?,
            options: r.dict("Options")?,
        },
        YIELD => {
            let request = r.id("INVOCATION.Request")?;
            let options = r.dict("Options")?;
            let (args, kwargs) = r.payload(Some(&options))?;
            Message::Yield {
                request,
                options,
                args,
                kwargs,
            }
        }
        _ => unreachable!("code_name knows the code"),
    };
    Ok(msg)
}
