//! The decode budget: how much a received message may cost to decode, checked while decoding.
//!
//! A message is decoded into a [`Value`] tree whose memory can be far larger than the message:
//! every list item takes a `size_of::<Value>()` slot (32 bytes) even when it was one byte on the
//! wire, every non-empty dict allocates a B-tree node (about 640 bytes) even for `{"":0}`, three
//! bytes of MessagePack. Without a bound, a 1 MiB message costs up to ~220 times its length.
//!
//! [`DecodeLimits`] bounds, during decoding (before the memory is taken, so that a refused
//! message costs little), over the whole message:
//! - the nesting depth of lists and dicts ([`DecodeLimits::max_depth`]);
//! - the number of elements: list items plus dict entries ([`DecodeLimits::max_elements`]);
//! - the estimated memory of the decoded tree, list slots, dict nodes, string and binary
//!   contents with allocator rounding ([`DecodeLimits::memory_limit`]): at most
//!   `memory_floor + memory_per_byte × message length`.
//!
//! Crossing any of them fails the decoding with [`DecodeError::Limit`] naming the limit. A
//! length prefix is never trusted beyond the input: a container announcing more elements than
//! the remaining bytes could hold fails as truncated before anything is allocated.
//!
//! [`estimated_heap_size`] gives the same estimate for any [`Value`] tree.

use std::fmt;

use crate::value::Value;
use crate::DecodeError;

/// The default [`DecodeLimits::max_depth`]: 128 nested lists/dicts (and CBOR tags), as
/// serde_json's own recursion limit, which also applies to JSON. A deeper message is refused
/// with [`Limit::Depth`] (for JSON, serde_json's "recursion limit exceeded" may come first).
pub const DEFAULT_MAX_DEPTH: usize = 128;

/// The default [`DecodeLimits::max_elements`]: 2^20 (1,048,576) list items plus dict entries
/// per message, whatever its length. This bounds the work a message causes downstream (each
/// element is re-encoded once per subscriber serializer by the realm); more is refused with
/// [`Limit::Elements`] as soon as a container header (or, for JSON and CBOR indefinite
/// lengths, the element) that crosses it is read.
pub const DEFAULT_MAX_ELEMENTS: usize = 1 << 20;

/// The default [`DecodeLimits::memory_per_byte`]: the decoded tree may take 20 bytes of memory
/// per byte of message (above [`DEFAULT_MEMORY_FLOOR`]). Ordinary payloads cost 1 to 20 times
/// their length: binary and long strings about 1×, floats 4×, short strings up to 9×, JSON
/// numbers up to 16×, lists of records with a few real keys 15× (JSON) to 19× (MessagePack,
/// CBOR). What costs more is a mass of one-byte list items (32×) or of tiny dicts (up to 220×,
/// a B-tree node each), which is refused with [`Limit::Memory`] as soon as the estimate crosses
/// the limit, before the memory is taken.
pub const DEFAULT_MEMORY_PER_BYTE: usize = 20;

/// The default [`DecodeLimits::memory_floor`]: 8 MiB of decoded memory are always allowed, so
/// that no message under ~37 KB is refused for its memory, whatever its shape (lists of small
/// dicts such as `{"x": 1, "y": 2}` cost up to 100 times their length).
pub const DEFAULT_MEMORY_FLOOR: usize = 8 << 20;

/// Bounds on what decoding one message may cost; see the [module documentation](self).
///
/// [`crate::Serializer::decode`] uses [`DecodeLimits::DEFAULT`];
/// [`crate::Serializer::decode_with_limits`] takes others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DecodeLimits {
    /// The deepest nesting of lists and dicts (and CBOR tags) accepted; the message itself (a
    /// list) is depth 0 and its elements depth 1. For JSON, serde_json's own limit of 128
    /// applies as well.
    pub max_depth: usize,
    /// The most elements (list items plus dict entries, counted over the whole message).
    pub max_elements: usize,
    /// Bytes of estimated decoded memory allowed per byte of message, on top of
    /// [`DecodeLimits::memory_floor`].
    pub memory_per_byte: usize,
    /// Bytes of estimated decoded memory allowed whatever the message length.
    pub memory_floor: usize,
}

impl DecodeLimits {
    /// The defaults: [`DEFAULT_MAX_DEPTH`], [`DEFAULT_MAX_ELEMENTS`],
    /// [`DEFAULT_MEMORY_PER_BYTE`], [`DEFAULT_MEMORY_FLOOR`].
    pub const DEFAULT: DecodeLimits = DecodeLimits {
        max_depth: DEFAULT_MAX_DEPTH,
        max_elements: DEFAULT_MAX_ELEMENTS,
        memory_per_byte: DEFAULT_MEMORY_PER_BYTE,
        memory_floor: DEFAULT_MEMORY_FLOOR,
    };

    /// No bound on elements or memory (depth stays bounded by [`DEFAULT_MAX_DEPTH`], to protect
    /// the stack): the behaviour before decode limits existed, for trusted input and tests.
    pub const UNLIMITED: DecodeLimits = DecodeLimits {
        max_depth: DEFAULT_MAX_DEPTH,
        max_elements: usize::MAX,
        memory_per_byte: usize::MAX,
        memory_floor: usize::MAX,
    };

    /// The estimated decoded memory allowed for a message of `len` bytes:
    /// `memory_floor + memory_per_byte × len` (saturating).
    pub fn memory_limit(&self, len: usize) -> usize {
        self.memory_floor
            .saturating_add(self.memory_per_byte.saturating_mul(len))
    }
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits::DEFAULT
    }
}

/// Which decode limit a message crossed (in [`DecodeError::Limit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    /// [`DecodeLimits::max_depth`]: nesting too deep.
    Depth,
    /// [`DecodeLimits::max_elements`]: too many list items and dict entries.
    Elements,
    /// [`DecodeLimits::memory_limit`]: the decoded tree would take too much memory.
    Memory,
}

impl Limit {
    /// The name of the [`DecodeLimits`] field: `max_depth`, `max_elements`, `memory`
    /// (`memory_floor` + `memory_per_byte`).
    pub fn name(self) -> &'static str {
        match self {
            Limit::Depth => "max_depth",
            Limit::Elements => "max_elements",
            Limit::Memory => "memory",
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

// ---------------------------------------------------------------------------------------------
// The cost model, shared by the decoders' budget and `estimated_heap_size`.

/// The slot of one list item, or one dict value inside a B-tree node.
const VALUE_SLOT: usize = std::mem::size_of::<Value>();

/// What the allocator takes for a request of `n` bytes: glibc's malloc rounding (8 bytes of
/// header, 16-byte granules, 32 bytes at least); nothing for `n == 0` (no allocation).
#[inline]
pub(crate) const fn alloc_size(n: usize) -> usize {
    if n == 0 {
        0
    } else {
        let c = n.saturating_add(8 + 15) & !15;
        if c < 32 {
            32
        } else {
            c
        }
    }
}

/// One B-tree leaf node of a [`crate::Dict`] (11 keys, 11 values and bookkeeping), allocated by
/// the first entry of a dict.
const DICT_FIRST_ENTRY: usize = alloc_size(11 * (std::mem::size_of::<String>() + VALUE_SLOT) + 12);
/// A dict's entries up to this many live in its first node.
const DICT_NODE_ENTRIES: usize = 11;
/// What each entry beyond [`DICT_NODE_ENTRIES`] adds: nodes hold 5 to 11 entries once split,
/// so at most a fifth of a node, plus its share of the internal nodes.
const DICT_MORE_ENTRY: usize = DICT_FIRST_ENTRY / 5 + DICT_FIRST_ENTRY / 25;

/// The estimated memory of a dict of `n` entries, not counting the keys' and values' own heap.
#[inline]
pub(crate) const fn dict_size(n: usize) -> usize {
    if n == 0 {
        0
    } else if n <= DICT_NODE_ENTRIES {
        DICT_FIRST_ENTRY
    } else {
        DICT_FIRST_ENTRY.saturating_add((n - DICT_NODE_ENTRIES).saturating_mul(DICT_MORE_ENTRY))
    }
}

/// What the `n`-th entry (1-based) of a dict adds to [`dict_size`].
#[inline]
pub(crate) const fn dict_entry_size(n: usize) -> usize {
    if n == 1 {
        DICT_FIRST_ENTRY
    } else if n <= DICT_NODE_ENTRIES {
        0
    } else {
        DICT_MORE_ENTRY
    }
}

/// The estimated heap memory of a [`Value`] tree (not counting the root's own slot), with the
/// model the decode budget uses: list capacity × 32-byte slots, dict B-tree nodes, string and
/// binary capacity, each allocation rounded as glibc's malloc does. It is an estimate: within
/// some percent of what a counting allocator sees for trees the decoders build.
pub fn estimated_heap_size(v: &Value) -> usize {
    match v {
        Value::Null | Value::Bool(_) | Value::Int(_) | Value::UInt(_) | Value::Float(_) => 0,
        Value::Str(s) => alloc_size(s.capacity()),
        Value::Bytes(b) => alloc_size(b.capacity()),
        Value::List(l) => {
            alloc_size(l.capacity() * VALUE_SLOT) + l.iter().map(estimated_heap_size).sum::<usize>()
        }
        Value::Dict(d) => {
            dict_size(d.len())
                + d.iter()
                    .map(|(k, v)| alloc_size(k.capacity()) + estimated_heap_size(v))
                    .sum::<usize>()
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The running budget of one decoding.

/// What is left of the limits while one message is decoded: a few integer operations per
/// element, container header and string.
pub(crate) struct Budget {
    serializer: &'static str,
    max_depth: usize,
    max_elements: usize,
    elements: usize,
    memory_limit: usize,
    memory: usize,
    len: usize,
}

impl Budget {
    pub(crate) fn new(serializer: &'static str, limits: &DecodeLimits, len: usize) -> Self {
        Budget {
            serializer,
            max_depth: limits.max_depth,
            max_elements: limits.max_elements,
            elements: 0,
            memory_limit: limits.memory_limit(len),
            memory: 0,
            len,
        }
    }

    /// Fails if a value at `depth` is too deep.
    #[inline]
    pub(crate) fn depth(&self, depth: usize) -> Result<(), DecodeError> {
        if depth > self.max_depth {
            return Err(self.depth_error());
        }
        Ok(())
    }

    /// Counts `n` more elements (list items or dict entries).
    #[inline]
    pub(crate) fn elements(&mut self, n: usize) -> Result<(), DecodeError> {
        self.elements = self.elements.saturating_add(n);
        if self.elements > self.max_elements {
            return Err(self.elements_error());
        }
        Ok(())
    }

    /// Counts `bytes` more of estimated memory.
    #[inline]
    pub(crate) fn memory(&mut self, bytes: usize) -> Result<(), DecodeError> {
        self.memory = self.memory.saturating_add(bytes);
        if self.memory > self.memory_limit {
            return Err(self.memory_error());
        }
        Ok(())
    }

    /// Counts a list of `n` items allocated at once (its slots).
    #[inline]
    pub(crate) fn list(&mut self, n: usize) -> Result<(), DecodeError> {
        self.elements(n)?;
        self.memory(alloc_size(n.saturating_mul(VALUE_SLOT)))
    }

    /// For a full list of unknown length (JSON, CBOR indefinite) with capacity `old`: counts
    /// and returns the capacity to grow it to, double (at least 4) as `Vec` would, or less if
    /// only less fits in the budget, since the old buffer and the new one are both held while
    /// the items move.
    #[inline]
    pub(crate) fn list_growth(&mut self, old: usize) -> Result<usize, DecodeError> {
        let left = self.memory_limit.saturating_sub(self.memory);
        let new = old
            .saturating_mul(2)
            .max(4)
            .min(left.saturating_sub(32) / VALUE_SLOT);
        if new <= old {
            return Err(self.memory_error());
        }
        self.memory(alloc_size(new.saturating_mul(VALUE_SLOT)))?;
        // Once the items have moved, the old buffer is freed.
        self.memory = self
            .memory
            .saturating_sub(alloc_size(old.saturating_mul(VALUE_SLOT)));
        Ok(new)
    }

    /// Counts a dict of `n` entries known up front (its nodes).
    #[inline]
    pub(crate) fn dict(&mut self, n: usize) -> Result<(), DecodeError> {
        self.elements(n)?;
        self.memory(dict_size(n))
    }

    /// Counts the `n`-th entry (1-based) of a dict of unknown length.
    #[inline]
    pub(crate) fn dict_entry(&mut self, n: usize) -> Result<(), DecodeError> {
        self.elements(1)?;
        self.memory(dict_entry_size(n))
    }

    /// Counts a string or binary of `n` bytes.
    #[inline]
    pub(crate) fn bytes(&mut self, n: usize) -> Result<(), DecodeError> {
        self.memory(alloc_size(n))
    }

    #[cold]
    fn error(&self, limit: Limit, detail: String) -> DecodeError {
        DecodeError::Limit {
            serializer: self.serializer,
            limit,
            detail,
        }
    }
    #[cold]
    fn depth_error(&self) -> DecodeError {
        self.error(
            Limit::Depth,
            format!("nesting deeper than {} levels", self.max_depth),
        )
    }
    #[cold]
    fn elements_error(&self) -> DecodeError {
        self.error(
            Limit::Elements,
            format!(
                "more than {} list items and dict entries in one message",
                self.max_elements
            ),
        )
    }
    #[cold]
    fn memory_error(&self) -> DecodeError {
        self.error(
            Limit::Memory,
            format!(
                "decoding this message of {} bytes would take more than {} bytes of memory",
                self.len, self.memory_limit
            ),
        )
    }
}
