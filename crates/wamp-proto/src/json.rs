//! JSON through serde_json: messages are written element by element with `Serialize` impls,
//! and read in one pass into [`Value`] (strings `"\0" + base64` become [`Value::Bytes`]).

use serde::ser::{Serialize, SerializeSeq, Serializer};

use crate::value::Value;
use crate::wire::{Elem, Elems};
use crate::DecodeError;

const NAME: &str = "JSON";

/// Appends the JSON text of the message elements to `out` (partly, on error).
pub(crate) fn encode_into(elems: &Elems<'_>, out: &mut Vec<u8>) -> Result<(), String> {
    serde_json::to_writer(&mut *out, &Wire(elems)).map_err(|e| e.to_string())
}

/// Decodes one JSON text into a [`Value`].
pub(crate) fn decode(bytes: &[u8]) -> Result<Value, DecodeError> {
    serde_json::from_slice(bytes).map_err(|e| DecodeError::syntax(NAME, e.to_string()))
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
