//! Decode time and memory of worst-case ~1 MiB messages, without limits (as before the decode
//! budget) and with the default [`DecodeLimits`]: the figures of issue 15.
//!
//! `cargo run --release -p wamp-proto --example decode_budget`

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Instant;

use wamp_proto::limits::estimated_heap_size;
use wamp_proto::{DecodeLimits, Serializer};

/// Counts live and peak allocated bytes (this example is single-threaded).
struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let n = LIVE.fetch_add(l.size(), Relaxed) + l.size();
        PEAK.fetch_max(n, Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Relaxed);
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static A: Counting = Counting;

const MIB: usize = 1 << 20;

/// PUBLISH [16, 1, {}, "t", Args] with `n` copies of `item` in Args.
fn publish(s: Serializer, item: &[u8], n: usize) -> Vec<u8> {
    let mut b = match s {
        Serializer::MsgPack => vec![0x95, 0x10, 0x01, 0x80, 0xa1, b't', 0xdd],
        Serializer::Cbor => vec![0x85, 0x10, 0x01, 0xa0, 0x61, b't', 0x9a],
        Serializer::Json => {
            let mut t = b"[16,1,{},\"t\",[".to_vec();
            for i in 0..n {
                if i > 0 {
                    t.push(b',');
                }
                t.extend_from_slice(item);
            }
            t.extend_from_slice(b"]]");
            return t;
        }
    };
    b.extend_from_slice(&(n as u32).to_be_bytes());
    for _ in 0..n {
        b.extend_from_slice(item);
    }
    b
}

fn main() {
    let cases = [
        (
            "1M one-byte ints",
            Serializer::MsgPack,
            publish(Serializer::MsgPack, &[0], MIB - 11),
        ),
        (
            "1M one-byte ints",
            Serializer::Cbor,
            publish(Serializer::Cbor, &[0], MIB - 11),
        ),
        (
            "512K ints",
            Serializer::Json,
            publish(Serializer::Json, b"0", MIB / 2 - 8),
        ),
        (
            "350K {\"\":0}",
            Serializer::MsgPack,
            publish(Serializer::MsgPack, &[0x81, 0xa0, 0], (MIB - 11) / 3),
        ),
        (
            "350K {\"\":0}",
            Serializer::Cbor,
            publish(Serializer::Cbor, &[0xa1, 0x60, 0], (MIB - 11) / 3),
        ),
        (
            "150K {\"\":0}",
            Serializer::Json,
            publish(Serializer::Json, b"{\"\":0}", MIB / 7 - 2),
        ),
    ];
    println!(
        "{:<18} {:<11} {:>8}  {:>28}  {:>40}",
        "message", "serializer", "bytes", "no limits (before)", "default limits (after)"
    );
    for (name, s, b) in cases {
        let run = |limits: &DecodeLimits| {
            let runs = 5;
            let mut best = f64::MAX;
            let mut peak = 0;
            let mut est = 0;
            let mut outcome = String::new();
            for _ in 0..runs {
                let base = LIVE.load(Relaxed);
                PEAK.store(base, Relaxed);
                let t = Instant::now();
                let r = black_box(s.decode_value_with_limits(black_box(&b), limits));
                let dt = t.elapsed().as_secs_f64();
                peak = PEAK.load(Relaxed) - base;
                est = r.as_ref().map(estimated_heap_size).unwrap_or(0);
                outcome = match &r {
                    Ok(_) => "accepted".into(),
                    Err(e) => format!(
                        "refused ({})",
                        match e {
                            wamp_proto::DecodeError::Limit { limit, .. } => limit.name(),
                            _ => "other",
                        }
                    ),
                };
                let t = Instant::now();
                drop(r);
                best = best.min(dt + t.elapsed().as_secs_f64());
            }
            (best, peak, est, outcome)
        };
        let (t0, p0, e0, _) = run(&DecodeLimits::UNLIMITED);
        let (t1, p1, _, o1) = run(&DecodeLimits::DEFAULT);
        println!(
            "{name:<18} {:<11} {:>8}  {:>6.1} ms {:>6.1} MiB ({:>5.1} est)  {:>6.2} ms {:>6.1} MiB {o1:>18}",
            s.display_name(),
            b.len(),
            t0 * 1e3,
            p0 as f64 / MIB as f64,
            e0 as f64 / MIB as f64,
            t1 * 1e3,
            p1 as f64 / MIB as f64,
        );
    }
}
