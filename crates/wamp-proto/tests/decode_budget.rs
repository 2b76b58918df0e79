//! The decode budget ([`DecodeLimits`]): each limit crossed in each serializer, length prefixes
//! that claim more than the input holds, and the memory that worst-case 1 MiB messages really
//! take (a counting allocator measures this thread's peak) against the estimate and the limit.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use wamp_proto::limits::{estimated_heap_size, Limit, DEFAULT_MEMORY_FLOOR};
use wamp_proto::{DecodeError, DecodeLimits, Message, Serializer, Value};

// ---------------------------------------------------------------------------------------------
// A counting allocator: live bytes and peak per thread (tests run on several threads).

struct Counting;

thread_local! {
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let _ = LIVE.try_with(|c| {
            let n = c.get() + l.size();
            c.set(n);
            let _ = PEAK.try_with(|p| p.set(p.get().max(n)));
        });
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        let _ = LIVE.try_with(|c| c.set(c.get().saturating_sub(l.size())));
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static A: Counting = Counting;

/// Runs `f`, returning its result and the peak of bytes it had allocated at once (requested
/// sizes, without the allocator's rounding) on this thread.
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let r = f();
    (r, PEAK.with(Cell::get) - base)
}

const MIB: usize = 1 << 20;

// ---------------------------------------------------------------------------------------------
// Messages: PUBLISH [16, 1, {}, "t", Args] with Args built of `n` copies of an item.

/// MessagePack PUBLISH whose Args list holds `n` copies of `item` (raw bytes).
fn msgpack_publish(item: &[u8], n: usize) -> Vec<u8> {
    let mut b = vec![0x95, 0x10, 0x01, 0x80, 0xa1, b't', 0xdd];
    b.extend_from_slice(&(n as u32).to_be_bytes());
    for _ in 0..n {
        b.extend_from_slice(item);
    }
    b
}

/// CBOR PUBLISH whose Args list holds `n` copies of `item` (raw bytes).
fn cbor_publish(item: &[u8], n: usize) -> Vec<u8> {
    let mut b = vec![0x85, 0x10, 0x01, 0xa0, 0x61, b't', 0x9a];
    b.extend_from_slice(&(n as u32).to_be_bytes());
    for _ in 0..n {
        b.extend_from_slice(item);
    }
    b
}

/// JSON PUBLISH whose Args list holds `n` copies of `item` (JSON text).
fn json_publish(item: &str, n: usize) -> Vec<u8> {
    let mut s = String::from("[16,1,{},\"t\",[");
    for i in 0..n {
        if i > 0 {
            s.push(',');
        }
        s.push_str(item);
    }
    s.push_str("]]");
    s.into_bytes()
}

/// The worst shapes per wire byte: one-byte integers and one-entry dicts `{"": 0}`, as many as
/// fit in about 1 MiB, in each serializer.
fn worst_cases() -> Vec<(&'static str, Serializer, Vec<u8>)> {
    vec![
        (
            "ints",
            Serializer::MsgPack,
            msgpack_publish(&[0x00], MIB - 11),
        ),
        (
            "tiny dicts",
            Serializer::MsgPack,
            msgpack_publish(&[0x81, 0xa0, 0x00], (MIB - 11) / 3),
        ),
        ("ints", Serializer::Cbor, cbor_publish(&[0x00], MIB - 11)),
        (
            "tiny dicts",
            Serializer::Cbor,
            cbor_publish(&[0xa1, 0x60, 0x00], (MIB - 11) / 3),
        ),
        ("ints", Serializer::Json, json_publish("0", MIB / 2 - 8)),
        (
            "tiny dicts",
            Serializer::Json,
            json_publish("{\"\":0}", MIB / 7 - 2),
        ),
    ]
}

fn limit_of(e: &DecodeError) -> Option<Limit> {
    match e {
        DecodeError::Limit { limit, .. } => Some(*limit),
        _ => None,
    }
}

fn args_of(m: &Message) -> &[Value] {
    match m {
        Message::Publish { args: Some(a), .. } => a,
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Each limit in each serializer.

#[test]
fn element_limit_in_each_serializer() {
    let limits = DecodeLimits {
        max_elements: 20,
        ..DecodeLimits::DEFAULT
    };
    // The message list itself has 5 elements; 15 args make 20, 16 make 21.
    for (n, ok) in [(15, true), (16, false)] {
        for (s, b) in [
            (Serializer::MsgPack, msgpack_publish(&[0x01], n)),
            (Serializer::Cbor, cbor_publish(&[0x01], n)),
            (Serializer::Json, json_publish("1", n)),
        ] {
            let r = s.decode_with_limits(&b, &limits);
            if ok {
                assert_eq!(args_of(&r.unwrap()).len(), n, "{s:?}");
            } else {
                let e = r.unwrap_err();
                assert_eq!(limit_of(&e), Some(Limit::Elements), "{s:?}: {e}");
                assert!(e.to_string().contains("max_elements"), "{e}");
            }
        }
    }
    // Dict entries count too, and CBOR indefinite lengths as they come.
    let dicts = [
        (
            Serializer::MsgPack,
            msgpack_publish(&[0x81, 0xa1, b'a', 0x01], 8),
        ),
        (Serializer::Cbor, cbor_publish(&[0xa1, 0x61, b'a', 0x01], 8)),
        (Serializer::Json, json_publish("{\"a\":1}", 8)),
        (
            Serializer::Cbor,
            [
                &[0x85, 0x10, 0x01, 0xa0, 0x61, b't', 0x9f][..],
                &[0xbf, 0x61, b'a', 0x01, 0xff].repeat(8),
                &[0xff],
            ]
            .concat(),
        ),
    ];
    for (s, b) in dicts {
        // 5 + 8 items + 8 entries = 21.
        let e = s.decode_with_limits(&b, &limits).unwrap_err();
        assert_eq!(limit_of(&e), Some(Limit::Elements), "{s:?}: {e}");
        let ok = DecodeLimits {
            max_elements: 21,
            ..limits
        };
        assert!(s.decode_with_limits(&b, &ok).is_ok(), "{s:?}");
    }
}

#[test]
fn depth_limit_in_each_serializer() {
    let limits = DecodeLimits {
        max_depth: 6,
        ..DecodeLimits::DEFAULT
    };
    // Args (depth 1) holding lists down to depth `d`, the innermost holding a 1.
    fn nested(s: Serializer, d: usize) -> Vec<u8> {
        match s {
            Serializer::MsgPack => {
                let mut b = vec![0x95, 0x10, 0x01, 0x80, 0xa1, b't'];
                b.extend(std::iter::repeat_n(0x91, d));
                b.push(0x01);
                b
            }
            Serializer::Cbor => {
                let mut b = vec![0x85, 0x10, 0x01, 0xa0, 0x61, b't'];
                b.extend(std::iter::repeat_n(0x81, d));
                b.push(0x01);
                b
            }
            Serializer::Json => {
                format!("[16,1,{{}},\"t\",{}1{}]", "[".repeat(d), "]".repeat(d)).into_bytes()
            }
        }
    }
    for s in Serializer::ALL {
        // Depth d lists put the 1 at depth d + 1.
        assert!(
            s.decode_with_limits(&nested(s, 5), &limits).is_ok(),
            "{s:?}"
        );
        let e = s.decode_with_limits(&nested(s, 6), &limits).unwrap_err();
        assert_eq!(limit_of(&e), Some(Limit::Depth), "{s:?}: {e}");
        assert!(e.to_string().contains("nesting deeper than 6"), "{e}");
        // The default is 128.
        assert!(s.decode(&nested(s, 100)).is_ok(), "{s:?}");
        assert!(s.decode(&nested(s, 200)).is_err(), "{s:?}");
    }
    // CBOR tags count as a level.
    let mut tagged = vec![0x85, 0x10, 0x01, 0xa0, 0x61, b't', 0x81];
    tagged.extend(std::iter::repeat_n(0xc6, 10));
    tagged.push(0x01);
    let e = Serializer::Cbor
        .decode_with_limits(&tagged, &limits)
        .unwrap_err();
    assert_eq!(limit_of(&e), Some(Limit::Depth), "{e}");
}

#[test]
fn memory_limit_in_each_serializer() {
    // 64 bytes per byte of message and no floor: a list of 1-byte items (32-byte slots) fits,
    // one of 1-entry dicts (a 640-byte node for 3 or 7 bytes) does not.
    let limits = DecodeLimits {
        memory_per_byte: 64,
        memory_floor: 0,
        ..DecodeLimits::DEFAULT
    };
    let cases = [
        (
            Serializer::MsgPack,
            msgpack_publish(&[0x00], 1000),
            msgpack_publish(&[0x81, 0xa0, 0x00], 1000),
        ),
        (
            Serializer::Cbor,
            cbor_publish(&[0x00], 1000),
            cbor_publish(&[0xa1, 0x60, 0x00], 1000),
        ),
        (
            Serializer::Json,
            json_publish("0", 1000),
            json_publish("{\"\":0}", 1000),
        ),
    ];
    for (s, fits, too_much) in cases {
        assert!(s.decode_with_limits(&fits, &limits).is_ok(), "{s:?}");
        let e = s.decode_with_limits(&too_much, &limits).unwrap_err();
        assert_eq!(limit_of(&e), Some(Limit::Memory), "{s:?}: {e}");
        assert!(e.to_string().contains("bytes of memory"), "{e}");
        // Without limits it decodes.
        assert!(s
            .decode_with_limits(&too_much, &DecodeLimits::UNLIMITED)
            .is_ok());
    }
}

#[test]
fn length_prefixes_are_not_trusted_beyond_the_input() {
    // Headers claiming 2^32-1 (or 2^64-1) elements with a few bytes of data: refused as
    // truncated, having allocated next to nothing.
    let cases: Vec<(Serializer, Vec<u8>)> = vec![
        (
            Serializer::MsgPack,
            vec![0xdd, 0xff, 0xff, 0xff, 0xff, 0x01],
        ),
        (
            Serializer::MsgPack,
            vec![0xdf, 0xff, 0xff, 0xff, 0xff, 0xa0, 0x01],
        ),
        (
            Serializer::MsgPack,
            vec![
                0x95, 0x10, 0x01, 0x80, 0xa1, b't', 0xdd, 0xff, 0xff, 0xff, 0xff, 0x00,
            ],
        ),
        (Serializer::Cbor, vec![0x9a, 0xff, 0xff, 0xff, 0xff, 0x01]),
        (
            Serializer::Cbor,
            vec![0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
        ),
        (
            Serializer::Cbor,
            vec![0xba, 0xff, 0xff, 0xff, 0xff, 0x60, 0x01],
        ),
    ];
    for (s, b) in cases {
        let (r, peak) = peak_of(|| s.decode_with_limits(&b, &DecodeLimits::UNLIMITED));
        let e = r.unwrap_err();
        assert!(
            e.to_string().contains("unexpected end of data"),
            "{s:?}: {e}"
        );
        assert!(peak < 4096, "{s:?}: {peak} bytes allocated");
    }
    // A 1 MiB message whose nested lists each claim nearly all that remains: reserving for
    // each header what remains would take ~128 × 32 MiB; the budget refuses the second one.
    let mut b = vec![0x95, 0x10, 0x01, 0x80, 0xa1, b't'];
    for i in 0..100u32 {
        b.push(0xdd);
        b.extend_from_slice(&(MIB as u32 - 5 * i - 200).to_be_bytes());
    }
    b.resize(MIB, 0);
    let (r, peak) = peak_of(|| Serializer::MsgPack.decode(&b));
    let e = r.unwrap_err();
    assert_eq!(limit_of(&e), Some(Limit::Memory), "{e}");
    assert!(peak < 32 * MIB, "{peak} bytes allocated");
}

// ---------------------------------------------------------------------------------------------
// Memory of worst-case and ordinary 1 MiB messages.

#[test]
fn worst_case_messages_stay_within_the_memory_limit() {
    let k = DecodeLimits::DEFAULT.memory_per_byte;
    for (shape, s, b) in worst_cases() {
        let limit = DecodeLimits::DEFAULT.memory_limit(b.len());
        assert!(b.len() <= MIB + 16, "{shape} {s:?}: {} bytes", b.len());
        // Without limits: what they cost (the measured peak), and the estimate's accuracy.
        let (v, unlimited_peak) = peak_of(|| {
            s.decode_value_with_limits(&b, &DecodeLimits::UNLIMITED)
                .unwrap()
        });
        let est = estimated_heap_size(&v);
        drop(v);
        assert!(
            est >= unlimited_peak / 2 && est <= unlimited_peak * 2,
            "{shape} {s:?}: estimate {est}, measured {unlimited_peak}"
        );
        // With the defaults: within the limit, and refused if it would cost more than 20x
        // (all but JSON's integers, which cost 16x: 2 bytes each on the wire).
        let (r, peak) = peak_of(|| s.decode(&b).map(drop));
        let accepted = r.is_ok();
        if (shape, s) == ("ints", Serializer::Json) {
            r.unwrap();
        } else {
            let e = r.unwrap_err();
            assert_eq!(limit_of(&e), Some(Limit::Memory), "{shape} {s:?}: {e}");
        }
        assert!(
            peak <= limit,
            "{shape} {s:?}: peak {peak} > limit {limit} ({k} per byte + floor)"
        );
        eprintln!(
            "{shape:>10} {:<11} {:>8} B: unlimited {:>5.1} MiB measured ({:>5.1}x), \
             {:>5.1} MiB estimated; default limits: {} at {:>5.1} MiB measured",
            s.display_name(),
            b.len(),
            unlimited_peak as f64 / MIB as f64,
            unlimited_peak as f64 / b.len() as f64,
            est as f64 / MIB as f64,
            if accepted { "accepted" } else { "refused" },
            peak as f64 / MIB as f64,
        );
    }
}

#[test]
fn ordinary_large_messages_are_accepted() {
    // About 1 MiB each: binary, strings, floats, JSON numbers, records with real keys.
    let blob = Serializer::MsgPack
        .encode(&Message::Publish {
            request: 1,
            options: Default::default(),
            topic: "t".into(),
            args: Some(vec![Value::Bytes(vec![7; MIB - 32])]),
            kwargs: None,
        })
        .unwrap();
    let record = wamp_proto::dict! {
        "id" => 123456, "name" => "sensor-12", "value" => 12.5, "ok" => true
    };
    let records = |n: usize| Message::Publish {
        request: 1,
        options: Default::default(),
        topic: "t".into(),
        args: Some(vec![Value::Dict(record.clone()); n]),
        kwargs: None,
    };
    let strings = |n: usize| Message::Publish {
        request: 1,
        options: Default::default(),
        topic: "t".into(),
        args: Some(vec![Value::from("abcdef"); n]),
        kwargs: None,
    };
    let mut cases = vec![
        ("binary", Serializer::MsgPack, blob),
        (
            "floats",
            Serializer::MsgPack,
            msgpack_publish(&[0xcb, 0x40, 0x29, 0, 0, 0, 0, 0, 0], MIB / 9),
        ),
        (
            "floats",
            Serializer::Cbor,
            cbor_publish(&[0xfb, 0x40, 0x29, 0, 0, 0, 0, 0, 0], MIB / 9),
        ),
        ("numbers", Serializer::Json, json_publish("12", MIB / 3)),
        ("small ints", Serializer::Json, json_publish("1", 1000)),
    ];
    for s in Serializer::ALL {
        cases.push(("records", s, s.encode(&records(MIB / 60)).unwrap()));
        cases.push(("strings", s, s.encode(&strings(MIB / 10)).unwrap()));
    }
    for (shape, s, b) in cases {
        let (r, peak) = peak_of(|| s.decode(&b));
        let m = r.unwrap_or_else(|e| panic!("{shape} {s:?} ({} bytes): {e}", b.len()));
        assert!(peak <= DecodeLimits::DEFAULT.memory_limit(b.len()));
        let est = estimated_heap_size(&s.decode_value(&b).unwrap());
        eprintln!(
            "{shape:>10} {:<11} {:>8} B: accepted, {:>5.1} MiB measured ({:>4.1}x), \
             {:>5.1} MiB estimated ({:>4.1}x)",
            s.display_name(),
            b.len(),
            peak as f64 / MIB as f64,
            peak as f64 / b.len() as f64,
            est as f64 / MIB as f64,
            est as f64 / b.len() as f64
        );
        drop(m);
    }
    // Any message under ~19 KB is accepted whatever its shape (the floor).
    let n = DEFAULT_MEMORY_FLOOR / 700;
    assert!(Serializer::MsgPack
        .decode(&msgpack_publish(&[0x81, 0xa0, 0x00], n))
        .is_ok());
}

#[test]
fn default_element_limit() {
    // 2^20 list items and dict entries: a JSON list of 2^20 zeros (2 MiB, 32 MiB of slots,
    // under that length's memory limit) crosses it with the message's own 5 elements.
    let n = wamp_proto::limits::DEFAULT_MAX_ELEMENTS;
    let e = Serializer::Json.decode(&json_publish("0", n)).unwrap_err();
    assert_eq!(limit_of(&e), Some(Limit::Elements), "{e}");
    assert!(Serializer::Json.decode(&json_publish("0", n - 5)).is_ok());
    // In MessagePack the header is enough: refused before the slots are allocated.
    let b = msgpack_publish(&[0x00], n);
    let (r, peak) = peak_of(|| Serializer::MsgPack.decode(&b));
    assert_eq!(limit_of(&r.unwrap_err()), Some(Limit::Elements));
    assert!(peak < 4096, "{peak}");
}
