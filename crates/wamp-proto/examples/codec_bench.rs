//! Rough encode/decode throughput of the serializers on typical router messages.
//!
//! `cargo run --release -p wamp-proto --example codec_bench`

use std::hint::black_box;
use std::time::Instant;

use wamp_proto::{dict, Dict, Message, Serializer, Value};

fn messages() -> Vec<(&'static str, Message)> {
    vec![
        (
            "small EVENT",
            Message::Event {
                subscription: 5512315355,
                publication: 4429313566,
                details: dict! {"publisher" => 1234},
                args: Some(vec!["Hello, world!".into(), 42.into()]),
                kwargs: None,
            },
        ),
        (
            "CALL with kwargs",
            Message::Call {
                request: 7814135,
                options: dict! {"timeout" => 1000, "receive_progress" => true},
                procedure: "com.myapp.procedure.add_complex".into(),
                args: Some(vec![1.into(), 2.5.into(), "three".into()]),
                kwargs: Some(dict! {
                    "user" => dict! {"name" => "alice", "age" => 30, "tags" => Value::List(vec!["a".into(), "b".into()])},
                    "blob" => vec![7u8; 64],
                    "flag" => false,
                }),
            },
        ),
        (
            "PUBLISHED",
            Message::Published {
                request: 239714735,
                publication: 4429313566,
            },
        ),
        (
            "SUBSCRIBE",
            Message::Subscribe {
                request: 1,
                options: Dict::new(),
                topic: "com.myapp.topic1".into(),
            },
        ),
    ]
}

fn main() {
    const N: u32 = 200_000;
    for (name, msg) in messages() {
        for s in Serializer::ALL {
            let bytes = s.encode(&msg).unwrap();
            let mut buf = Vec::with_capacity(256);
            let t = Instant::now();
            for _ in 0..N {
                buf.clear();
                s.encode_into(black_box(&msg), &mut buf).unwrap();
                black_box(&buf);
            }
            let enc = N as f64 / t.elapsed().as_secs_f64();
            let t = Instant::now();
            for _ in 0..N {
                black_box(s.decode(black_box(&bytes)).unwrap());
            }
            let dec = N as f64 / t.elapsed().as_secs_f64();
            println!(
                "{name:<18} {:<8} {:>4} B  encode {:>9.0}/s  decode {:>9.0}/s",
                s.name(),
                bytes.len(),
                enc,
                dec
            );
        }
    }
}
