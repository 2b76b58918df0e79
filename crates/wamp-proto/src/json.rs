//! JSON through serde_json: messages are written element by element with `Serialize` impls,
//! and read in one pass into [`Value`] (strings `"\0" + base64` become [`Value::Bytes`]) by a
//! visitor that counts the decode budget as serde_json hands it each value.

use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeSeq, Serializer};

use crate::limits::Budget;
use crate::value::{parse_json_binary_string, Dict, List, Value};
use crate::wire::{Elem, Elems};
use crate::{DecodeError, DecodeLimits};

const NAME: &str = "JSON";

/// Appends the JSON text of the message elements to `out` (partly, on error).
pub(crate) fn encode_into(elems: &Elems<'_>, out: &mut Vec<u8>) -> Result<(), String> {
    serde_json::to_writer(&mut *out, &Wire(elems)).map_err(|e| e.to_string())
}

/// Decodes one JSON text into a [`Value`], within `limits`.
pub(crate) fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<Value, DecodeError> {
    let mut state = State {
        budget: Budget::new(NAME, limits, bytes.len()),
        exceeded: None,
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let r = Seed {
        state: &mut state,
        depth: 0,
    }
    .deserialize(&mut de)
    .and_then(|v| de.end().map(|()| v));
    r.map_err(|e| {
        state
            .exceeded
            .take()
            .unwrap_or_else(|| DecodeError::syntax(NAME, e.to_string()))
    })
}

/// The budget of one decoding, and the limit error it raised (serde_json only carries text).
struct State {
    budget: Budget,
    exceeded: Option<DecodeError>,
}

impl State {
    /// Turns a budget result into serde's error type, keeping the typed error.
    #[inline]
    fn check<T, E: de::Error>(&mut self, r: Result<T, DecodeError>) -> Result<T, E> {
        r.map_err(|e| {
            let err = E::custom(&e);
            self.exceeded = Some(e);
            err
        })
    }
}

/// Deserializes one [`Value`] at `depth`, counting it in the budget.
struct Seed<'s> {
    state: &'s mut State,
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        let r = self.state.budget.depth(self.depth);
        self.state.check(r)?;
        d.deserialize_any(self)
    }
}

impl Seed<'_> {
    fn string<E: de::Error>(self, s: &str) -> Result<Value, E> {
        if let Some(bytes) = parse_json_binary_string(s) {
            let bytes = bytes.map_err(|e| {
                E::custom(format_args!(
                    "invalid base64 in a binary string (\"\\u0000...\"): {e}"
                ))
            })?;
            let r = self.state.budget.bytes(bytes.capacity());
            self.state.check(r)?;
            return Ok(Value::Bytes(bytes));
        }
        let r = self.state.budget.bytes(s.len());
        self.state.check(r)?;
        Ok(Value::Str(s.to_owned()))
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a WAMP value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        self.string(v)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut list = List::new();
        while let Some(v) = seq.next_element_seed(Seed {
            state: &mut *self.state,
            depth: self.depth + 1,
        })? {
            let r = self.state.budget.elements(1);
            self.state.check(r)?;
            if list.len() == list.capacity() {
                // Counted as it grows, before the allocation: the old buffer and the new one
                // are both held while the items move.
                let r = self.state.budget.list_growth(list.capacity());
                let new = self.state.check(r)?;
                list.reserve_exact(new - list.len());
            }
            list.push(v);
        }
        Ok(Value::List(list))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut dict = Dict::new();
        while let Some(k) = map.next_key::<String>()? {
            let r = self.state.budget.dict_entry(dict.len() + 1);
            self.state.check(r)?;
            let r = self.state.budget.bytes(k.len());
            self.state.check(r)?;
            let v = map.next_value_seed(Seed {
                state: &mut *self.state,
                depth: self.depth + 1,
            })?;
            dict.insert(k, v);
        }
        Ok(Value::Dict(dict))
    }
}

struct Wire<'a, 'b>(&'b Elems<'a>);

impl Serialize for Wire<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let items = self.0.as_slice();
        let mut seq = s.serialize_seq(Some(items.len()))?;
        for e in items {
            seq.serialize_element(&ElemSer(*e))?;
        }
        seq.end()
    }
}

struct ElemSer<'a>(Elem<'a>);

impl Serialize for ElemSer<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Elem::UInt(u) => s.serialize_u64(u),
            Elem::Str(v) => s.serialize_str(v),
            Elem::Dict(d) => d.serialize(s),
            Elem::List(l) => l.serialize(s),
            Elem::Value(v) => v.serialize(s),
        }
    }
}
