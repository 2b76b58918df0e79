//! The dynamic value carried in WAMP payloads, details and options: JSON's data model plus binary.
//!
//! [`Value`] implements `serde::Serialize` and `serde::Deserialize`. For human-readable formats
//! (JSON) binary is written as the WAMP JSON binary string, `"\0"` followed by standard base64,
//! such strings read back as [`Value::Bytes`], and non-finite floats cannot be written. For binary
//! formats (MessagePack, CBOR) binary is a native byte string and dictionary keys must be strings.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::ser::{self, SerializeMap, SerializeSeq};

/// A WAMP dictionary (`Details`, `Options`, `KwArgs`).
pub type Dict = BTreeMap<String, Value>;
/// A WAMP list (`Args`).
pub type List = Vec<Value>;

/// Any value that can appear inside a WAMP message.
///
/// Integers that fit an `i64` are always held as [`Value::Int`]; [`Value::UInt`] is used only for
/// values above `i64::MAX`, so two equal numbers always compare equal.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    /// JSON `null`, MessagePack `nil`, CBOR `null`/`undefined`.
    #[default]
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer that fits an `i64` (every integer up to `i64::MAX`).
    Int(i64),
    /// An integer above `i64::MAX` (never used for smaller values).
    UInt(u64),
    /// A floating point number.
    Float(f64),
    /// A text string.
    Str(String),
    /// Binary: a MessagePack `bin`, a CBOR byte string, or in JSON a string `"\0" + base64`.
    Bytes(Vec<u8>),
    /// A list of values.
    List(List),
    /// A dictionary with string keys.
    Dict(Dict),
}

impl Value {
    /// The value as an unsigned integer, if it is a non-negative integer.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::Int(i) if i >= 0 => Some(i as u64),
            Value::UInt(u) => Some(u),
            _ => None,
        }
    }
    /// The value as a signed integer, if it is an integer that fits.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::Int(i) => Some(i),
            Value::UInt(u) => i64::try_from(u).ok(),
            _ => None,
        }
    }
    /// The value as a float, if it is a number (integers are converted, possibly losing precision).
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::Int(i) => Some(i as f64),
            Value::UInt(u) => Some(u as f64),
            Value::Float(f) => Some(f),
            _ => None,
        }
    }
    /// The value as a string slice, if it is [`Value::Str`].
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
    /// The value as a boolean, if it is [`Value::Bool`].
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }
    /// The value as binary, if it is [`Value::Bytes`].
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }
    /// The value as a list, if it is [`Value::List`].
    pub fn as_list(&self) -> Option<&List> {
        match self {
            Value::List(l) => Some(l),
            _ => None,
        }
    }
    /// The value as a dictionary, if it is [`Value::Dict`].
    pub fn as_dict(&self) -> Option<&Dict> {
        match self {
            Value::Dict(d) => Some(d),
            _ => None,
        }
    }
    /// Whether the value is [`Value::Null`].
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
    /// A short name of the value's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Int(_) | Value::UInt(_) => "integer",
            Value::Float(_) => "float",
            Value::Str(_) => "string",
            Value::Bytes(_) => "binary",
            Value::List(_) => "list",
            Value::Dict(_) => "dict",
        }
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Value::Int(v.into())
    }
}
impl From<u32> for Value {
    fn from(v: u32) -> Self {
        Value::Int(v.into())
    }
}
impl From<u64> for Value {
    fn from(v: u64) -> Self {
        match i64::try_from(v) {
            Ok(i) => Value::Int(i),
            Err(_) => Value::UInt(v),
        }
    }
}
impl From<usize> for Value {
    fn from(v: usize) -> Self {
        Value::from(v as u64)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Str(v.to_owned())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Str(v)
    }
}
impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Value::Bytes(v)
    }
}
impl From<List> for Value {
    fn from(v: List) -> Self {
        Value::List(v)
    }
}
impl From<Dict> for Value {
    fn from(v: Dict) -> Self {
        Value::Dict(v)
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// Builds a [`Dict`] from `key => value` pairs: `dict! {"a" => 1, "b" => "x"}`.
#[macro_export]
macro_rules! dict {
    () => { $crate::Dict::new() };
    ($($k:expr => $v:expr),+ $(,)?) => {{
        let mut d = $crate::Dict::new();
        $( d.insert(::std::string::String::from($k), $crate::Value::from($v)); )+
        d
    }};
}

/// The base64 engine of WAMP JSON binary strings: standard alphabet, written with padding, read
/// with or without it.
pub(crate) const BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_encode_padding(true)
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// `"\0"` followed by the standard base64 of `bytes`: how WAMP JSON carries binary.
pub fn json_binary_string(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(1 + bytes.len().div_ceil(3) * 4);
    s.push('\0');
    BASE64.encode_string(bytes, &mut s);
    s
}

/// The bytes of a WAMP JSON binary string (`"\0"` + base64), `None` if `s` does not start with
/// NUL, `Some(Err(_))` if the base64 after it is invalid.
pub(crate) fn parse_json_binary_string(s: &str) -> Option<Result<Vec<u8>, base64::DecodeError>> {
    s.strip_prefix('\0').map(|b64| BASE64.decode(b64))
}

impl ser::Serialize for Value {
    fn serialize<S: ser::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => serializer.serialize_unit(),
            Value::Bool(b) => serializer.serialize_bool(*b),
            Value::Int(i) => serializer.serialize_i64(*i),
            Value::UInt(u) => serializer.serialize_u64(*u),
            Value::Float(f) => {
                if !f.is_finite() && serializer.is_human_readable() {
                    return Err(ser::Error::custom(format_args!(
                        "the float {f} cannot be represented in JSON"
                    )));
                }
                serializer.serialize_f64(*f)
            }
            Value::Str(s) => serializer.serialize_str(s),
            Value::Bytes(b) => {
                if serializer.is_human_readable() {
                    serializer.serialize_str(&json_binary_string(b))
                } else {
                    serializer.serialize_bytes(b)
                }
            }
            Value::List(l) => {
                let mut seq = serializer.serialize_seq(Some(l.len()))?;
                for v in l {
                    seq.serialize_element(v)?;
                }
                seq.end()
            }
            Value::Dict(d) => {
                let mut map = serializer.serialize_map(Some(d.len()))?;
                for (k, v) in d {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

impl<'de> de::Deserialize<'de> for Value {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let human_readable = deserializer.is_human_readable();
        ValueSeed { human_readable }.deserialize(deserializer)
    }
}

/// Deserializes one [`Value`]; `human_readable` selects the JSON reading of `"\0"` strings.
#[derive(Clone, Copy)]
struct ValueSeed {
    human_readable: bool,
}

impl<'de> DeserializeSeed<'de> for ValueSeed {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl ValueSeed {
    fn string<E: de::Error>(self, s: &str) -> Result<Value, E> {
        if self.human_readable {
            if let Some(bytes) = parse_json_binary_string(s) {
                return bytes.map(Value::Bytes).map_err(|e| {
                    E::custom(format_args!(
                        "invalid base64 in a binary string (\"\\u0000...\"): {e}"
                    ))
                });
            }
        }
        Ok(Value::Str(s.to_owned()))
    }
}

impl<'de> Visitor<'de> for ValueSeed {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a WAMP value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        self.deserialize(d)
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
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
        if let Ok(i) = i64::try_from(v) {
            Ok(Value::Int(i))
        } else if let Ok(u) = u64::try_from(v) {
            Ok(Value::UInt(u))
        } else {
            Err(E::custom(format_args!("integer {v} out of range")))
        }
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        u64::try_from(v)
            .map(Value::from)
            .map_err(|_| E::custom(format_args!("integer {v} out of range")))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        self.string(v)
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        if self.human_readable && v.starts_with('\0') {
            self.string(&v)
        } else {
            Ok(Value::Str(v))
        }
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::Bytes(v.to_vec()))
    }
    fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Value, E> {
        Ok(Value::Bytes(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut list = List::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(v) = seq.next_element_seed(self)? {
            list.push(v);
        }
        Ok(Value::List(list))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut dict = Dict::new();
        while let Some(k) = map.next_key_seed(KeySeed)? {
            let v = map.next_value_seed(self)?;
            dict.insert(k, v);
        }
        Ok(Value::Dict(dict))
    }
}

/// Deserializes a dictionary key, which must be a string.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = String;
    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<String, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = String;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string dictionary key")
    }
    fn visit_str<E>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }
    fn visit_string<E>(self, v: String) -> Result<String, E> {
        Ok(v)
    }
}
