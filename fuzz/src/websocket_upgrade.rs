//! What the router reads itself from a WebSocket upgrade request (`wamp_proto::websocket`): the
//! offered subprotocols, the choice among them, and the header fields for the session details.
//! The rest of the request (HTTP syntax, the WebSocket handshake headers) is read by hyper and
//! axum, which have their own fuzzing; the router checks no `Origin`.
//!
//! Input: `[accepted, fields...]`. Bits 0–2 of `accepted` say which serializers the endpoint
//! accepts (JSON, MessagePack, CBOR; bit 3 reverses their order); the rest is header fields, one
//! per line (`\n`), each `name:value` (a line without `:` is a name with an empty value). With
//! bit 4 set every line is a `Sec-WebSocket-Protocol` value, to reach the negotiation sooner.
//!
//! For any input, [`check`] requires:
//!
//! 1. Nothing panics.
//! 2. Offered subprotocols are non-empty, trimmed, without commas, each found in a field value,
//!    and they are what the router read before these functions were taken out of its async code
//!    (`http::HeaderMap`, `HeaderValue::to_str`, split and trim: [`offered_before`]) whenever
//!    the fields are valid HTTP header fields.
//! 3. A chosen subprotocol is one the client offered and the endpoint accepts, and no subprotocol
//!    the client preferred to it is accepted. A refusal happens only when none offered is
//!    accepted; its text is not empty and names every offered and every accepted subprotocol.
//! 4. The combined headers have one lower-case key per field name, each the field values joined
//!    by `, ` in order; and equal what the router built from an `http::HeaderMap` before
//!    ([`headers_before`]).

use std::collections::BTreeMap;

use http::{HeaderMap, HeaderName, HeaderValue};
use wamp_proto::websocket::{choose_subprotocol, combine_headers, offered_subprotocols};
use wamp_proto::Serializer;

/// Runs the checks above on `data`; panics if one fails.
pub fn check(data: &[u8]) {
    let [flags, rest @ ..] = data else {
        return;
    };
    let mut accepted: Vec<Serializer> = Serializer::ALL
        .into_iter()
        .enumerate()
        .filter(|(i, _)| flags & (1 << i) != 0)
        .map(|(_, s)| s)
        .collect();
    if flags & 0x08 != 0 {
        accepted.reverse();
    }
    let all_protocol = flags & 0x10 != 0;
    let fields: Vec<(&[u8], &[u8])> = rest
        .split(|&b| b == b'\n')
        .map(|line| {
            if all_protocol {
                return (&b"Sec-WebSocket-Protocol"[..], line);
            }
            match line.iter().position(|&b| b == b':') {
                Some(i) => (&line[..i], &line[i + 1..]),
                None => (line, &b""[..]),
            }
        })
        .collect();

    let protocol_values: Vec<&[u8]> = fields
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(b"sec-websocket-protocol"))
        .map(|(_, v)| *v)
        .collect();
    let offered = offered_subprotocols(protocol_values.iter().copied());
    check_offered(&offered, &protocol_values);
    check_choice(&offered, &accepted);

    // The header fields for the session details, from any names that are text.
    let text_fields: Vec<(&str, &[u8])> = fields
        .iter()
        .filter_map(|(n, v)| Some((std::str::from_utf8(n).ok()?, *v)))
        .collect();
    check_combined(&text_fields);

    // As the router calls them, from hyper's header map, against what it did before.
    let mut map = HeaderMap::new();
    for (name, value) in &fields {
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        {
            map.append(name, value);
        }
    }
    let from_map = offered_subprotocols(
        map.get_all(http::header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .map(HeaderValue::as_bytes),
    );
    assert_eq!(
        from_map,
        offered_before(&map),
        "offered subprotocols differ from the router's reading before the refactor"
    );
    let combined = combine_headers(map.iter().map(|(n, v)| (n.as_str(), v.as_bytes())));
    assert_eq!(
        combined,
        headers_before(&map),
        "combined headers differ from the router's before the refactor"
    );
}

fn check_offered(offered: &[String], values: &[&[u8]]) {
    for p in offered {
        assert!(!p.is_empty(), "an empty subprotocol offered");
        assert_eq!(p.trim(), p, "an offered subprotocol is not trimmed: {p:?}");
        assert!(
            !p.contains(','),
            "an offered subprotocol holds a comma: {p:?}"
        );
        assert!(
            values
                .iter()
                .any(|v| v.windows(p.len()).any(|w| w == p.as_bytes())),
            "offered {p:?} is in no Sec-WebSocket-Protocol value"
        );
    }
}

fn check_choice(offered: &[String], accepted: &[Serializer]) {
    let acceptable =
        |p: &String| Serializer::from_ws_subprotocol(p).filter(|s| accepted.contains(s));
    match choose_subprotocol(offered, accepted) {
        Ok(chosen) => {
            assert!(
                accepted.contains(&chosen),
                "chose {chosen:?}, which the endpoint does not accept ({accepted:?})"
            );
            let at = offered
                .iter()
                .position(|p| p == chosen.ws_subprotocol())
                .unwrap_or_else(|| {
                    panic!("chose {chosen:?}, which the client did not offer: {offered:?}")
                });
            assert!(
                offered[..at].iter().all(|p| acceptable(p).is_none()),
                "chose {chosen:?} over a subprotocol the client preferred: {offered:?}"
            );
        }
        Err(refused) => {
            assert!(
                offered.iter().all(|p| acceptable(p).is_none()),
                "refused although {offered:?} holds one of {accepted:?}"
            );
            assert_eq!(refused.offered, offered, "the refusal names other offers");
            assert_eq!(
                refused.accepted, accepted,
                "the refusal names other serializers"
            );
            let text = refused.to_string();
            assert!(!text.is_empty(), "a refusal without text");
            for p in offered {
                assert!(
                    text.contains(p.as_str()),
                    "the refusal does not name {p:?}: {text}"
                );
            }
            for s in accepted {
                assert!(
                    text.contains(s.ws_subprotocol()),
                    "the refusal does not name {s:?}: {text}"
                );
            }
        }
    }
}

fn check_combined(fields: &[(&str, &[u8])]) {
    let combined = combine_headers(fields.iter().copied());
    let mut expected: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in fields {
        expected
            .entry(name.to_ascii_lowercase())
            .or_default()
            .push(String::from_utf8_lossy(value).into_owned());
    }
    assert_eq!(
        combined.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "combined headers have other names"
    );
    for (name, values) in expected {
        assert_eq!(
            combined[&name],
            values.join(", "),
            "header {name:?} is not its values joined in order"
        );
    }
}

/// How the router read the offered subprotocols before `wamp_proto::websocket` existed (a copy
/// of its `offered_protocols`).
pub fn offered_before(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect()
}

/// How the router combined the request headers before (a copy of its `header_map`).
pub fn headers_before(headers: &HeaderMap) -> BTreeMap<String, String> {
    let mut map: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        map.entry(name.as_str().to_owned())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert_with(|| value.into_owned());
    }
    map
}
