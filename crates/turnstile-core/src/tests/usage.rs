//! The usage rows a realm hands its shell (`Realm::poll_usage`): one per closed statistics
//! cycle, carrying exactly the figures of the `wamp.session.on_stats` event, in the same order,
//! plus the identity, transport and end of the session.

use super::*;
use crate::realm::UsageRow;

fn rows(h: &mut Harness) -> Vec<UsageRow> {
    std::iter::from_fn(|| h.realm.poll_usage()).collect()
}

fn goodbye() -> Message {
    Message::Goodbye {
        details: Dict::new(),
        reason: uris::CLOSE_NORMAL.into(),
    }
}

/// Every on_stats event (join, rated, duration and final snapshots, three serializers, a
/// GOODBYE and a lost connection) has one row with the same figures, in the same order.
#[test]
fn rows_equal_the_on_stats_events() {
    let mut h = Harness::new(realm_config(stats(|s| {
        s.rated_message_size = 16;
        s.trigger_after_rated_messages = 9;
        s.trigger_after_duration = 5;
    })));
    h.realm.record_usage();
    let (mut m, subs) = monitor(&mut h);
    let mut sessions = Vec::new();
    for serializer in Serializer::ALL {
        let mut c = h.connect(serializer);
        let sid = h.join(&mut c);
        h.subscribe(&mut c, "com.topic");
        for i in 0..6u64 {
            let publish = Message::Publish {
                request: 10 + i,
                options: dict! {"acknowledge" => true, "exclude_me" => false},
                topic: "com.topic".into(),
                args: Some(vec![Value::Bytes(vec![1; i as usize * 20])]),
                kwargs: None,
            };
            h.send(&mut c, publish);
            h.pump(&mut c);
        }
        h.advance(Duration::from_secs(5));
        sessions.push((c, sid));
    }
    let (mut gone, gone_id) = sessions.pop().unwrap();
    h.realm.handle_disconnected(gone.conn, h.now);
    h.pump(&mut gone);
    for (c, _) in &mut sessions {
        h.send(c, goodbye());
        h.pump(c);
    }
    let events = meta_events(&h.take(&mut m), &subs);
    let all = rows(&mut h);
    // The monitor's own cycles are rows too (it is a session of the realm), without events
    // about them that it could receive: compare the measured sessions.
    let ids: Vec<Id> = sessions
        .iter()
        .map(|(_, id)| *id)
        .chain([gone_id])
        .collect();
    for id in ids {
        let evs = stats_for(&events, id);
        let rs: Vec<&UsageRow> = all.iter().filter(|r| r.session == id).collect();
        assert!(evs.len() > 3, "several cycles: {evs:?}");
        assert_eq!(evs.len(), rs.len(), "one row per event");
        for (e, r) in evs.iter().zip(&rs) {
            let figures = |d: &Dict| {
                (
                    int(d, "cycle"),
                    int(d, "timestamp"),
                    int(d, "duration"),
                    int(d, "messages"),
                    int(d, "bytes"),
                    int(d, "rated_messages"),
                    d["first"].as_bool().unwrap(),
                    d["last"].as_bool().unwrap(),
                    d["serializer"].as_str().unwrap().to_owned(),
                )
            };
            let row = (
                r.cycle,
                r.started,
                r.duration,
                r.messages,
                r.bytes,
                r.rated_messages,
                r.first,
                r.last,
                r.serializer.to_owned(),
            );
            assert_eq!(figures(e), row);
            assert_eq!(
                (r.realm.as_str(), r.authrole.as_str(), r.authmethod.as_str()),
                ("realm1", "anonymous", "anonymous")
            );
            assert!(!r.authid.is_empty());
            assert_eq!(
                (r.transport, r.peer.as_str()),
                ("websocket", "tcp4:127.0.0.1:1")
            );
            assert_eq!(
                r.ended.is_some(),
                r.last,
                "only the final row says how it ended"
            );
        }
        let ended = rs.last().unwrap().ended;
        let expected = if id == gone_id {
            "connection_lost"
        } else {
            "goodbye"
        };
        assert_eq!(ended, Some(expected));
        // A duration snapshot (5 s on the fake clock) is among them.
        assert!(rs.iter().any(|r| r.duration == 5_000_000_000), "{rs:?}");
        // The rows add up to what the client saw.
        let client = sessions
            .iter()
            .find(|(_, sid)| *sid == id)
            .map(|(c, _)| c)
            .unwrap_or(&gone);
        let (messages, bytes) = client.totals();
        assert_eq!(rs.iter().map(|r| r.messages).sum::<u64>(), messages);
        assert_eq!(rs.iter().map(|r| r.bytes).sum::<u64>(), bytes);
    }
    assert!(h.realm.poll_usage().is_none());
}

/// Rows do not depend on anyone listening: no subscriber, meta API off; and a realm that does
/// not record builds none.
#[test]
fn rows_without_subscribers_and_without_meta_api() {
    let mut config = realm_config(stats(|_| {}));
    config.options.enable_meta_api = false;
    let mut h = Harness::new(config);
    h.realm.record_usage();
    let mut c = h.connect(Serializer::MsgPack);
    let sid = h.join(&mut c);
    h.advance(Duration::from_millis(1500));
    h.send(&mut c, goodbye());
    h.pump(&mut c);
    let all = rows(&mut h);
    assert_eq!(all.len(), 2, "join and final: {all:?}");
    assert!(all.iter().all(|r| r.session == sid));
    assert_eq!(
        (all[0].first, all[0].last, all[0].messages),
        (true, false, 2)
    );
    assert_eq!((all[1].first, all[1].last), (false, true));
    assert_eq!(all[1].started, all[0].started + all[0].duration);
    assert_eq!(all[1].duration, 1_500_000_000);
    assert_eq!(all[1].messages, 2, "GOODBYE and its reply");
    assert_eq!(all[1].ended, Some("goodbye"));

    let mut h = Harness::new(realm_config(stats(|_| {})));
    let mut c = h.connect(Serializer::Json);
    h.join(&mut c);
    assert!(h.realm.poll_usage().is_none(), "not recording: no rows");
}
