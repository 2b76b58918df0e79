//! CBOR (RFC 8949): a direct encoder of messages and a single-pass decoder into [`Value`].
//!
//! Byte strings are [`Value::Bytes`] and text strings always [`Value::Str`]. The encoder writes
//! definite lengths, shortest integer heads and floats as float 64. The decoder also reads
//! indefinite lengths and half/single floats, ignores tags (except bignums, which are out of
//! range), reads `undefined` as null, and requires string map keys.

use crate::limits::Budget;
use crate::msgpack::non_string_key;
use crate::value::{Dict, Value};
use crate::wire::{Elem, Elems};
use crate::{DecodeError, DecodeLimits};

const NAME: &str = "CBOR";

const UINT: u8 = 0;
const NEGINT: u8 = 1;
const BYTES: u8 = 2;
const TEXT: u8 = 3;
const ARRAY: u8 = 4;
const MAP: u8 = 5;
const TAG: u8 = 6;
const SIMPLE: u8 = 7;

// ---------------------------------------------------------------------------------------------
// Encoding

/// Appends the encoding of the message elements to `out`.
pub(crate) fn encode_into(elems: &Elems<'_>, out: &mut Vec<u8>) {
    let items = elems.as_slice();
    head(out, ARRAY, items.len() as u64);
    for e in items {
        match *e {
            Elem::UInt(u) => head(out, UINT, u),
            Elem::Str(s) => text(out, s),
            Elem::Dict(d) => dict(out, d),
            Elem::List(l) => list(out, l),
            Elem::Value(v) => value(out, v),
        }
    }
}

fn head(out: &mut Vec<u8>, major: u8, n: u64) {
    let m = major << 5;
    if n < 24 {
        out.push(m | n as u8);
    } else if n <= u8::MAX as u64 {
        out.extend_from_slice(&[m | 24, n as u8]);
    } else if n <= u16::MAX as u64 {
        out.push(m | 25);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else if n <= u32::MAX as u64 {
        out.push(m | 26);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(m | 27);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn text(out: &mut Vec<u8>, s: &str) {
    head(out, TEXT, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn list(out: &mut Vec<u8>, l: &[Value]) {
    head(out, ARRAY, l.len() as u64);
    for v in l {
        value(out, v);
    }
}

fn dict(out: &mut Vec<u8>, d: &Dict) {
    head(out, MAP, d.len() as u64);
    for (k, v) in d {
        text(out, k);
        value(out, v);
    }
}

fn value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.push(0xf6),
        Value::Bool(false) => out.push(0xf4),
        Value::Bool(true) => out.push(0xf5),
        Value::Int(i) if *i >= 0 => head(out, UINT, *i as u64),
        // -1 - i, computed without overflow for i64::MIN.
        Value::Int(i) => head(out, NEGINT, !(*i as u64)),
        Value::UInt(u) => head(out, UINT, *u),
        Value::Float(f) => {
            out.push(0xfb);
            out.extend_from_slice(&f.to_be_bytes());
        }
        Value::Str(s) => text(out, s),
        Value::Bytes(b) => {
            head(out, BYTES, b.len() as u64);
            out.extend_from_slice(b);
        }
        Value::List(l) => list(out, l),
        Value::Dict(d) => dict(out, d),
    }
}

// ---------------------------------------------------------------------------------------------
// Decoding

/// Decodes exactly one CBOR data item from `buf`, within `limits`.
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

/// What a head's additional information says: a number, or an indefinite length.
enum Arg {
    Num(u64),
    Indefinite,
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    budget: Budget,
}

impl<'a> Reader<'a> {
    fn err_at(at: usize, detail: impl std::fmt::Display) -> DecodeError {
        DecodeError::syntax(NAME, format!("{detail} (at byte {at})"))
    }
    fn take(&mut self, n: u64) -> Result<&'a [u8], DecodeError> {
        let rest = &self.buf[self.pos..];
        if n > rest.len() as u64 {
            return Err(Self::err_at(self.pos, "unexpected end of data"));
        }
        self.pos += n as usize;
        Ok(&rest[..n as usize])
    }
    fn be<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        Ok(self
            .take(N as u64)?
            .try_into()
            .expect("take(N) returns exactly N bytes"))
    }
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    /// Reads a head: (major type, additional info, argument).
    fn head(&mut self) -> Result<(u8, u8, Arg), DecodeError> {
        let at = self.pos;
        let b = self.take(1)?[0];
        let (major, info) = (b >> 5, b & 0x1f);
        let arg = match info {
            0..=23 => Arg::Num(info as u64),
            24 => Arg::Num(self.take(1)?[0] as u64),
            25 => Arg::Num(u16::from_be_bytes(self.be()?) as u64),
            26 => Arg::Num(u32::from_be_bytes(self.be()?) as u64),
            27 => Arg::Num(u64::from_be_bytes(self.be()?)),
            31 => Arg::Indefinite,
            _ => {
                return Err(Self::err_at(
                    at,
                    format_args!("reserved additional info {info}"),
                ))
            }
        };
        Ok((major, info, arg))
    }
    /// Whether the next byte is the "break" stop code (consumed if so).
    fn at_break(&mut self) -> Result<bool, DecodeError> {
        match self.buf.get(self.pos) {
            Some(0xff) => {
                self.pos += 1;
                Ok(true)
            }
            Some(_) => Ok(false),
            None => Err(Self::err_at(self.pos, "unexpected end of data")),
        }
    }
    /// The content of a byte or text string of `major` type (definite or chunked).
    fn string_bytes(
        &mut self,
        major: u8,
        arg: Arg,
    ) -> Result<std::borrow::Cow<'a, [u8]>, DecodeError> {
        match arg {
            Arg::Num(n) => {
                let b = self.take(n)?;
                self.budget.bytes(b.len())?;
                Ok(std::borrow::Cow::Borrowed(b))
            }
            Arg::Indefinite => {
                let mut all = Vec::new();
                while !self.at_break()? {
                    let at = self.pos;
                    match self.head()? {
                        (m, _, Arg::Num(n)) if m == major => {
                            let chunk = self.take(n)?;
                            // Counted as it grows: the old buffer and the new one at once.
                            let old = all.capacity();
                            all.extend_from_slice(chunk);
                            if all.capacity() != old {
                                self.budget.bytes(all.capacity())?;
                            }
                        }
                        _ => {
                            return Err(Self::err_at(
                                at,
                                "a chunk of an indefinite-length string must be a definite string \
                                 of the same type",
                            ))
                        }
                    }
                }
                Ok(std::borrow::Cow::Owned(all))
            }
        }
    }
    fn value(&mut self, depth: usize) -> Result<Value, DecodeError> {
        self.budget.depth(depth)?;
        let at = self.pos;
        let (major, info, arg) = self.head()?;
        Ok(match (major, arg) {
            (UINT, Arg::Num(n)) => Value::from(n),
            (NEGINT, Arg::Num(n)) => match i64::try_from(n) {
                Ok(i) => Value::Int(-1 - i),
                Err(_) => {
                    return Err(Self::err_at(
                        at,
                        "negative integer below -2^63 is out of range",
                    ))
                }
            },
            (BYTES, arg) => Value::Bytes(self.string_bytes(BYTES, arg)?.into_owned()),
            (TEXT, arg) => {
                let b = self.string_bytes(TEXT, arg)?;
                let s = match b {
                    std::borrow::Cow::Borrowed(b) => std::str::from_utf8(b).map(str::to_owned),
                    std::borrow::Cow::Owned(b) => String::from_utf8(b).map_err(|e| e.utf8_error()),
                };
                Value::Str(s.map_err(|_| Self::err_at(at, "invalid UTF-8 in a text string"))?)
            }
            (ARRAY, Arg::Num(n)) => {
                // Every element takes at least one byte: a length prefix is never trusted
                // beyond the input, and the budget counts the slots before they exist.
                if n > self.remaining() as u64 {
                    return Err(Self::err_at(self.pos, "unexpected end of data"));
                }
                self.budget.list(n as usize)?;
                let mut l = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    l.push(self.value(depth + 1)?);
                }
                Value::List(l)
            }
            (ARRAY, Arg::Indefinite) => {
                let mut l = Vec::new();
                while !self.at_break()? {
                    let v = self.value(depth + 1)?;
                    self.budget.elements(1)?;
                    if l.len() == l.capacity() {
                        // Counted as it grows, before the allocation.
                        let new = self.budget.list_growth(l.capacity())?;
                        l.reserve_exact(new - l.len());
                    }
                    l.push(v);
                }
                Value::List(l)
            }
            (MAP, arg) => {
                let mut d = Dict::new();
                let mut left = match arg {
                    Arg::Num(n) => {
                        // Every entry takes at least two bytes (key and value).
                        if n > (self.remaining() / 2) as u64 {
                            return Err(Self::err_at(self.pos, "unexpected end of data"));
                        }
                        self.budget.dict(n as usize)?;
                        Some(n)
                    }
                    Arg::Indefinite => None,
                };
                loop {
                    match &mut left {
                        Some(0) => break,
                        Some(n) => *n -= 1,
                        None => {
                            if self.at_break()? {
                                break;
                            }
                            self.budget.dict_entry(d.len() + 1)?;
                        }
                    }
                    let key = match self.value(depth + 1)? {
                        Value::Str(s) => s,
                        other => return Err(non_string_key(&other)),
                    };
                    let v = self.value(depth + 1)?;
                    d.insert(key, v);
                }
                Value::Dict(d)
            }
            (TAG, Arg::Num(2 | 3)) => {
                return Err(Self::err_at(at, "bignums (tags 2 and 3) are out of range"))
            }
            // Other tags (dates, self-describe, ...) carry no meaning for WAMP: read the content.
            (TAG, Arg::Num(_)) => return self.value(depth + 1),
            (SIMPLE, arg) => match (info, arg) {
                (20, _) => Value::Bool(false),
                (21, _) => Value::Bool(true),
                (22 | 23, _) => Value::Null,
                (25, Arg::Num(h)) => Value::Float(f16_to_f64(h as u16)),
                (26, Arg::Num(f)) => Value::Float(f32::from_bits(f as u32) as f64),
                (27, Arg::Num(f)) => Value::Float(f64::from_bits(f)),
                (31, _) => return Err(Self::err_at(at, "unexpected break stop code")),
                _ => {
                    return Err(Self::err_at(
                        at,
                        format_args!("unsupported simple value {info}"),
                    ))
                }
            },
            (_, Arg::Indefinite) => {
                return Err(Self::err_at(
                    at,
                    format_args!("indefinite length for major type {major}"),
                ))
            }
            _ => unreachable!("major types are 0..=7"),
        })
    }
}

/// An IEEE 754 half-precision float as f64.
fn f16_to_f64(h: u16) -> f64 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = ((h >> 10) & 0x1f) as i32;
    let frac = (h & 0x3ff) as f64;
    let mag = match exp {
        0 => frac * 2f64.powi(-24),
        31 if frac == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        _ => (1.0 + frac / 1024.0) * 2f64.powi(exp - 15),
    };
    sign * mag
}
