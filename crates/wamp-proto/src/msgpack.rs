//! MessagePack: a direct encoder of messages and a single-pass decoder into [`Value`].
//!
//! `bin` is [`Value::Bytes`] and `str` is always [`Value::Str`]; integers are written in their
//! shortest form and floats as float 64; map keys must be strings; `ext` types are rejected.

use crate::limits::Budget;
use crate::value::{Dict, Value};
use crate::wire::{Elem, Elems};
use crate::{DecodeError, DecodeLimits};

const NAME: &str = "MessagePack";

// ---------------------------------------------------------------------------------------------
// Encoding

/// Appends the encoding of the message elements to `out`.
pub(crate) fn encode_into(elems: &Elems<'_>, out: &mut Vec<u8>) -> Result<(), String> {
    let items = elems.as_slice();
    array_header(out, items.len())?;
    for e in items {
        match *e {
            Elem::UInt(u) => uint(out, u),
            Elem::Str(s) => str(out, s)?,
            Elem::Dict(d) => dict(out, d)?,
            Elem::List(l) => list(out, l)?,
            Elem::Value(v) => value(out, v)?,
        }
    }
    Ok(())
}

fn len32(len: usize, what: &str) -> Result<u32, String> {
    u32::try_from(len).map_err(|_| format!("{what} of length {len} exceeds MessagePack's 2^32-1"))
}

fn uint(out: &mut Vec<u8>, u: u64) {
    if u < 128 {
        out.push(u as u8);
    } else if u <= u8::MAX as u64 {
        out.extend_from_slice(&[0xcc, u as u8]);
    } else if u <= u16::MAX as u64 {
        out.push(0xcd);
        out.extend_from_slice(&(u as u16).to_be_bytes());
    } else if u <= u32::MAX as u64 {
        out.push(0xce);
        out.extend_from_slice(&(u as u32).to_be_bytes());
    } else {
        out.push(0xcf);
        out.extend_from_slice(&u.to_be_bytes());
    }
}

fn int(out: &mut Vec<u8>, i: i64) {
    if i >= 0 {
        uint(out, i as u64)
    } else if i >= -32 {
        out.push(i as i8 as u8);
    } else if i >= i8::MIN as i64 {
        out.extend_from_slice(&[0xd0, i as i8 as u8]);
    } else if i >= i16::MIN as i64 {
        out.push(0xd1);
        out.extend_from_slice(&(i as i16).to_be_bytes());
    } else if i >= i32::MIN as i64 {
        out.push(0xd2);
        out.extend_from_slice(&(i as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&i.to_be_bytes());
    }
}

/// The header formats of a container or string: a fix form holding lengths up to `fix_max`,
/// then an optional 8-bit form and the 16 and 32-bit forms.
struct Header {
    fix: u8,
    fix_max: usize,
    m8: Option<u8>,
    m16: u8,
    m32: u8,
    what: &'static str,
}

const ARRAY: Header = Header {
    fix: 0x90,
    fix_max: 15,
    m8: None,
    m16: 0xdc,
    m32: 0xdd,
    what: "a list",
};
const MAP: Header = Header {
    fix: 0x80,
    fix_max: 15,
    m8: None,
    m16: 0xde,
    m32: 0xdf,
    what: "a dict",
};
const STR: Header = Header {
    fix: 0xa0,
    fix_max: 31,
    m8: Some(0xd9),
    m16: 0xda,
    m32: 0xdb,
    what: "a string",
};
/// `bin` has no fix form.
const BIN: Header = Header {
    fix: 0,
    fix_max: 0,
    m8: Some(0xc4),
    m16: 0xc5,
    m32: 0xc6,
    what: "binary",
};

fn header(out: &mut Vec<u8>, len: usize, h: &Header) -> Result<(), String> {
    if len <= h.fix_max && h.fix != 0 {
        out.push(h.fix | len as u8);
    } else if let (Some(m8), true) = (h.m8, len <= u8::MAX as usize) {
        out.extend_from_slice(&[m8, len as u8]);
    } else if len <= u16::MAX as usize {
        out.push(h.m16);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(h.m32);
        out.extend_from_slice(&len32(len, h.what)?.to_be_bytes());
    }
    Ok(())
}

fn array_header(out: &mut Vec<u8>, len: usize) -> Result<(), String> {
    header(out, len, &ARRAY)
}

fn str(out: &mut Vec<u8>, s: &str) -> Result<(), String> {
    header(out, s.len(), &STR)?;
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

fn bytes(out: &mut Vec<u8>, b: &[u8]) -> Result<(), String> {
    header(out, b.len(), &BIN)?;
    out.extend_from_slice(b);
    Ok(())
}

fn list(out: &mut Vec<u8>, l: &[Value]) -> Result<(), String> {
    array_header(out, l.len())?;
    for v in l {
        value(out, v)?;
    }
    Ok(())
}

fn dict(out: &mut Vec<u8>, d: &Dict) -> Result<(), String> {
    header(out, d.len(), &MAP)?;
    for (k, v) in d {
        str(out, k)?;
        value(out, v)?;
    }
    Ok(())
}

fn value(out: &mut Vec<u8>, v: &Value) -> Result<(), String> {
    match v {
        Value::Null => out.push(0xc0),
        Value::Bool(false) => out.push(0xc2),
        Value::Bool(true) => out.push(0xc3),
        Value::Int(i) => int(out, *i),
        Value::UInt(u) => uint(out, *u),
        Value::Float(f) => {
            out.push(0xcb);
            out.extend_from_slice(&f.to_be_bytes());
        }
        Value::Str(s) => str(out, s)?,
        Value::Bytes(b) => bytes(out, b)?,
        Value::List(l) => list(out, l)?,
        Value::Dict(d) => dict(out, d)?,
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Decoding

/// Decodes exactly one MessagePack value from `buf`, within `limits`.
pub(crate) fn decode(buf: &[u8], limits: &DecodeLimits) -> Result<Value, DecodeError> {
    let mut r = Reader {
        buf,
        pos: 0,
        budget: Budget::new(NAME, limits, buf.len()),
    };
    let v = r.value(0)?;
    if r.pos != buf.len() {
        return Err(DecodeError::syntax(
            NAME,
            format!("{} trailing bytes after the message", buf.len() - r.pos),
        ));
    }
    Ok(v)
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    budget: Budget,
}

impl<'a> Reader<'a> {
    fn err(&self, detail: impl std::fmt::Display) -> DecodeError {
        DecodeError::syntax(NAME, format!("{detail} (at byte {})", self.pos))
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        match self.buf.get(self.pos..).and_then(|rest| rest.get(..n)) {
            Some(s) => {
                self.pos += n;
                Ok(s)
            }
            None => Err(self.err("unexpected end of data")),
        }
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    fn be<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        Ok(self
            .take(N)?
            .try_into()
            .expect("take(N) returns exactly N bytes"))
    }
    fn len(&mut self, width: u8) -> Result<usize, DecodeError> {
        Ok(match width {
            1 => self.u8()? as usize,
            2 => u16::from_be_bytes(self.be()?) as usize,
            _ => u32::from_be_bytes(self.be()?) as usize,
        })
    }
    /// After a 0xd4 (fixext 1): whether it holds JavaScript's `undefined` (type 0, data 0);
    /// consumes those two bytes if so.
    fn peek_undefined(&mut self) -> bool {
        let is = self.buf.get(self.pos..self.pos + 2) == Some(&[0x00, 0x00][..]);
        if is {
            self.pos += 2;
        }
        is
    }
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    /// Fails as truncated if `n` values of at least `min_bytes` each cannot fit in what remains:
    /// a length prefix is never trusted beyond the input.
    fn fits(&self, n: usize, min_bytes: usize) -> Result<(), DecodeError> {
        if n.saturating_mul(min_bytes) > self.remaining() {
            return Err(self.err("unexpected end of data"));
        }
        Ok(())
    }
    fn str(&mut self, len: usize) -> Result<String, DecodeError> {
        let start = self.pos;
        let b = self.take(len)?;
        self.budget.bytes(len)?;
        match std::str::from_utf8(b) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(DecodeError::syntax(
                NAME,
                format!("invalid UTF-8 in the string at byte {start}"),
            )),
        }
    }
    fn array(&mut self, len: usize, depth: usize) -> Result<Value, DecodeError> {
        // Every element takes at least one byte; the budget counts the slots before they exist.
        self.fits(len, 1)?;
        self.budget.list(len)?;
        let mut l = Vec::with_capacity(len);
        for _ in 0..len {
            l.push(self.value(depth + 1)?);
        }
        Ok(Value::List(l))
    }
    fn map(&mut self, len: usize, depth: usize) -> Result<Value, DecodeError> {
        // Every entry takes at least two bytes (key and value).
        self.fits(len, 2)?;
        self.budget.dict(len)?;
        let mut d = Dict::new();
        for _ in 0..len {
            let key = match self.value(depth + 1)? {
                Value::Str(s) => s,
                other => return Err(non_string_key(&other)),
            };
            let v = self.value(depth + 1)?;
            d.insert(key, v);
        }
        Ok(Value::Dict(d))
    }
    fn value(&mut self, depth: usize) -> Result<Value, DecodeError> {
        self.budget.depth(depth)?;
        let at = self.pos;
        let b = self.u8()?;
        Ok(match b {
            0x00..=0x7f => Value::Int(b as i64),
            0x80..=0x8f => return self.map((b & 0x0f) as usize, depth),
            0x90..=0x9f => return self.array((b & 0x0f) as usize, depth),
            0xa0..=0xbf => Value::Str(self.str((b & 0x1f) as usize)?),
            0xc0 => Value::Null,
            0xc2 => Value::Bool(false),
            0xc3 => Value::Bool(true),
            0xc4..=0xc6 => {
                let len = self.len(1 << (b - 0xc4))?;
                let data = self.take(len)?;
                self.budget.bytes(len)?;
                Value::Bytes(data.to_vec())
            }
            0xca => Value::Float(f32::from_be_bytes(self.be()?) as f64),
            0xcb => Value::Float(f64::from_be_bytes(self.be()?)),
            0xcc => Value::Int(self.u8()? as i64),
            0xcd => Value::Int(u16::from_be_bytes(self.be()?) as i64),
            0xce => Value::Int(u32::from_be_bytes(self.be()?) as i64),
            0xcf => Value::from(u64::from_be_bytes(self.be()?)),
            0xd0 => Value::Int(i8::from_be_bytes(self.be()?) as i64),
            0xd1 => Value::Int(i16::from_be_bytes(self.be()?) as i64),
            0xd2 => Value::Int(i32::from_be_bytes(self.be()?) as i64),
            0xd3 => Value::Int(i64::from_be_bytes(self.be()?)),
            0xd9..=0xdb => {
                let len = self.len(1 << (b - 0xd9))?;
                Value::Str(self.str(len)?)
            }
            0xdc | 0xdd => {
                let len = self.len(if b == 0xdc { 2 } else { 4 })?;
                return self.array(len, depth);
            }
            0xde | 0xdf => {
                let len = self.len(if b == 0xde { 2 } else { 4 })?;
                return self.map(len, depth);
            }
            0xe0..=0xff => Value::Int(b as i8 as i64),
            // JavaScript's `undefined` as msgpackr and msgpack5 write it (fixext 1, type 0,
            // data 0): wampy sends it for unset options. Read as null, i.e. absent.
            0xd4 if self.peek_undefined() => Value::Null,
            0xc7..=0xc9 | 0xd4..=0xd8 => {
                return Err(DecodeError::syntax(
                    NAME,
                    format!("extension types are not supported in WAMP (at byte {at})"),
                ))
            }
            0xc1 => {
                return Err(DecodeError::syntax(
                    NAME,
                    format!("invalid type byte 0xc1 (at byte {at})"),
                ))
            }
        })
    }
}

pub(crate) fn non_string_key(key: &Value) -> DecodeError {
    DecodeError::Shape(format!(
        "dict keys must be strings, found a {} key",
        key.type_name()
    ))
}

#[cfg(test)]
mod tests {
    use crate::{Message, Serializer, Value};

    #[test]
    fn javascript_undefined_reads_as_null() {
        // [32, 1, {"match": undefined}, "a"] as wampy's MessagePack serializer writes it.
        let bytes = [
            0x94, 0x20, 0x01, 0x81, 0xa5, b'm', b'a', b't', b'c', b'h', 0xd4, 0x00, 0x00, 0xa1,
            b'a',
        ];
        match Serializer::MsgPack.decode(&bytes).unwrap() {
            Message::Subscribe { options, .. } => assert_eq!(options["match"], Value::Null),
            other => panic!("{other:?}"),
        }
        // Any other extension is still refused.
        let mut other = bytes;
        other[11] = 0x05;
        assert!(Serializer::MsgPack.decode(&other).is_err());
    }
}
