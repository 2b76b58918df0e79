//! WAMP over WebSocket, sans-IO: what a router reads itself from a client's upgrade request.
//! The HTTP parsing and the WebSocket handshake checks (method, `Connection`, `Upgrade`,
//! `Sec-WebSocket-Key`, `Sec-WebSocket-Version`) belong to the HTTP and WebSocket libraries;
//! what is left is WAMP's:
//!
//! - [`offered_subprotocols`]: the `Sec-WebSocket-Protocol` header fields as the list of
//!   subprotocols the client offers, in its order of preference;
//! - [`choose_subprotocol`]: the serializer of the first offered subprotocol the endpoint
//!   accepts (Crossbar's choice), or a refusal ([`NoSubprotocol`]) whose text tells the client
//!   what it offered and what it could have;
//! - [`combine_headers`]: the request's header fields as one text per lower-case name, for the
//!   session details (`transport.http_headers_received`).
//!
//! They take header fields as bytes, as they arrived, so that they can be tested (and fuzzed)
//! without an HTTP stack.

use std::collections::BTreeMap;
use std::fmt;

use crate::Serializer;

/// The subprotocols offered by the `Sec-WebSocket-Protocol` fields whose values are
/// `field_values` (a request may repeat the header), in the client's order: each value split at
/// commas, each item trimmed of spaces and tabs, empty items dropped. A value that is not
/// visible ASCII (or tab) is ignored as a whole, as HTTP libraries refuse to read it as text.
pub fn offered_subprotocols<'a>(field_values: impl IntoIterator<Item = &'a [u8]>) -> Vec<String> {
    field_values
        .into_iter()
        .filter(|v| v.iter().all(|&b| is_visible_ascii(b)))
        .filter_map(|v| std::str::from_utf8(v).ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect()
}

/// Visible ASCII or tab: the octets `http::HeaderValue::to_str` accepts.
fn is_visible_ascii(b: u8) -> bool {
    (32..127).contains(&b) || b == b'\t'
}

/// The serializer of the first subprotocol in `offered` (the client's order of preference) that
/// names one of `accepted` (the endpoint's serializers), or why there is none.
pub fn choose_subprotocol(
    offered: &[String],
    accepted: &[Serializer],
) -> Result<Serializer, NoSubprotocol> {
    offered
        .iter()
        .find_map(|p| Serializer::from_ws_subprotocol(p).filter(|s| accepted.contains(s)))
        .ok_or_else(|| NoSubprotocol {
            offered: offered.to_vec(),
            accepted: accepted.to_vec(),
        })
}

/// An upgrade request offering none of the endpoint's WAMP subprotocols: the router refuses it
/// (HTTP 400) with this error's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoSubprotocol {
    /// What the client offered, in its order.
    pub offered: Vec<String>,
    /// What the endpoint accepts, in its order.
    pub accepted: Vec<Serializer>,
}

impl fmt::Display for NoSubprotocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let accepted: Vec<&str> = self.accepted.iter().map(|s| s.ws_subprotocol()).collect();
        write!(
            f,
            "no supported WAMP subprotocol offered: offered [{}], this endpoint accepts {}",
            self.offered.join(", "),
            accepted.join(", ")
        )
    }
}

impl std::error::Error for NoSubprotocol {}

/// The header fields `(name, value)` of a request as one text per name: names lower-cased,
/// repeated fields joined by `, ` in the order they came (RFC 9110 §5.3), values that are not
/// UTF-8 decoded lossily.
pub fn combine_headers<'a>(
    fields: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> BTreeMap<String, String> {
    let mut map: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in fields {
        let value = String::from_utf8_lossy(value);
        map.entry(name.to_ascii_lowercase())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert_with(|| value.into_owned());
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offered(values: &[&str]) -> Vec<String> {
        offered_subprotocols(values.iter().map(|v| v.as_bytes()))
    }

    #[test]
    fn offered_subprotocols_split_trim_and_keep_order() {
        assert_eq!(
            offered(&[
                "wamp.2.cbor, wamp.2.json",
                " ,\tgraphql-ws ,",
                "wamp.2.msgpack"
            ]),
            ["wamp.2.cbor", "wamp.2.json", "graphql-ws", "wamp.2.msgpack"]
        );
        assert!(offered(&[]).is_empty());
        assert!(offered(&["", " , ,"]).is_empty());
        // A value with an octet outside visible ASCII is not text: ignored whole.
        assert_eq!(
            offered_subprotocols([&b"wamp.2.json\x7f"[..], b"wamp.2.cbor"]),
            ["wamp.2.cbor"]
        );
        assert!(offered(&["wamp.2.jsön"]).is_empty());
    }

    #[test]
    fn the_clients_first_accepted_subprotocol_is_chosen() {
        let both = [Serializer::Json, Serializer::MsgPack];
        let p = offered(&["wamp.2.cbor, wamp.2.msgpack, wamp.2.json"]);
        assert_eq!(choose_subprotocol(&p, &both), Ok(Serializer::MsgPack));
        let p = offered(&["WAMP.2.JSON, wamp.2.json"]);
        assert_eq!(choose_subprotocol(&p, &both), Ok(Serializer::Json));
        let p = offered(&["wamp.2.cbor, graphql-ws"]);
        let refused = choose_subprotocol(&p, &both).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "no supported WAMP subprotocol offered: offered [wamp.2.cbor, graphql-ws], this \
             endpoint accepts wamp.2.json, wamp.2.msgpack"
        );
    }

    #[test]
    fn repeated_headers_are_joined_under_lower_case_names() {
        let fields = [
            ("Origin", &b"http://a"[..]),
            ("x-Tag", b"1"),
            ("X-TAG", b"2\xff"),
        ];
        let map = combine_headers(fields);
        assert_eq!(map["origin"], "http://a");
        assert_eq!(map["x-tag"], "1, 2\u{fffd}");
        assert_eq!(map.len(), 2);
    }
}
