//! Unit tests of the serializers: round trips, binary, integers, shape errors, ids.

use super::*;
use crate::{dict, Dict, Value};

#[test]
fn smoke() {
    let m = Message::Publish {
        request: 1,
        options: dict! {"acknowledge" => true},
        topic: "a.b".into(),
        args: Some(vec![
            Value::Bytes(vec![1, 2, 3]),
            1.5.into(),
            Value::from(u64::MAX),
        ]),
        kwargs: Some(Dict::new()),
    };
    for s in Serializer::ALL {
        let b = s.encode(&m).unwrap();
        eprintln!("{s:?} {:?}", String::from_utf8_lossy(&b));
        assert_eq!(s.decode(&b).unwrap(), m);
    }
}
