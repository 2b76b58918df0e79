//! A realm given a new configuration while sessions are joined: each kind of change applies to
//! their next actions, and nobody is disconnected (but by removing the realm).

use super::*;

/// A role allowed `allow` on every URI.
fn role(name: &str, allow: Allow) -> RoleConfig {
    let mut r = allow_all_role(name);
    r.permissions[0].allow = allow;
    r
}

const ALL: Allow = Allow {
    call: true,
    register: true,
    publish: true,
    subscribe: true,
};

fn publish(h: &mut Harness, c: &mut Client, request: Id, topic: &str) {
    let msg = Message::Publish {
        request,
        options: dict! {"acknowledge" => true},
        topic: topic.into(),
        args: None,
        kwargs: None,
    };
    h.send(c, msg);
}

fn call(h: &mut Harness, c: &mut Client, request: Id, procedure: &str) {
    let msg = Message::Call {
        request,
        options: Dict::new(),
        procedure: procedure.into(),
        args: None,
        kwargs: None,
    };
    h.send(c, msg);
}

fn register(h: &mut Harness, c: &mut Client, procedure: &str) -> Id {
    let msg = Message::Register {
        request: 9,
        options: Dict::new(),
        procedure: procedure.into(),
    };
    h.send(c, msg);
    match h.take(c).as_slice() {
        [Message::Registered { registration, .. }] => *registration,
        other => panic!("no REGISTERED: {other:?}"),
    }
}

/// The error URI of the ERROR answering `request`, if that is what `msgs` hold.
fn error_for(msgs: &[Message], request: Id) -> Option<&str> {
    msgs.iter().find_map(|m| match m {
        Message::Error {
            request: r, error, ..
        } if *r == request => Some(error.as_str()),
        _ => None,
    })
}

fn published(msgs: &[Message], request: Id) -> bool {
    msgs.iter()
        .any(|m| matches!(m, Message::Published { request: r, .. } if *r == request))
}

fn events(msgs: &[Message]) -> usize {
    msgs.iter()
        .filter(|m| matches!(m, Message::Event { .. }))
        .count()
}

/// A permission taken away applies to the very next request, even one whose allowed decision
/// was cached, and the subscriptions and registrations it no longer allows are revoked; the
/// session stays joined and keeps what it is still allowed.
#[test]
fn a_removed_permission_applies_at_once() {
    let mut h = Harness::new(realm_config(None));
    let mut a = h.connect(Serializer::Json);
    h.join(&mut a);
    let mut b = h.connect(Serializer::MsgPack);
    h.join(&mut b);
    h.subscribe(&mut a, "com.t");
    register(&mut h, &mut a, "com.p");
    publish(&mut h, &mut b, 1, "com.t");
    assert!(published(&h.take(&mut b), 1));
    assert_eq!(events(&h.take(&mut a)), 1);

    // Publishing and registering are no longer allowed; subscribing and calling still are.
    let mut config = realm_config(None);
    config.roles = vec![role(
        "anonymous",
        Allow {
            call: true,
            subscribe: true,
            ..Allow::default()
        },
    )];
    h.realm.handle_config(config, h.now);
    publish(&mut h, &mut b, 2, "com.t");
    assert_eq!(error_for(&h.take(&mut b), 2), Some(uris::NOT_AUTHORIZED));
    // The registration was revoked: the call finds no procedure.
    call(&mut h, &mut b, 3, "com.p");
    assert_eq!(error_for(&h.take(&mut b), 3), Some(uris::NO_SUCH_PROCEDURE));
    assert!(!a.closed && !b.closed);
    assert_eq!(h.realm.session_count(), 2);

    // Subscribing taken away too: the subscription goes, publishing (allowed again) reaches
    // nobody.
    let mut config = realm_config(None);
    config.roles = vec![role(
        "anonymous",
        Allow {
            publish: true,
            ..Allow::default()
        },
    )];
    h.realm.handle_config(config, h.now);
    h.take(&mut a);
    publish(&mut h, &mut b, 4, "com.t");
    assert!(published(&h.take(&mut b), 4));
    assert_eq!(events(&h.take(&mut a)), 0, "the subscription was revoked");
}

/// A client that announced subscription revocation is told why its subscription went.
#[test]
fn a_revoked_subscription_is_announced_with_not_authorized() {
    let mut h = Harness::new(realm_config(None));
    let mut a = h.connect(Serializer::Json);
    let details = dict! {"roles" => Value::Dict(dict! {
        "subscriber" => Value::Dict(dict! {"features" => Value::Dict(dict! {
            "subscription_revocation" => true,
        })}),
    })};
    h.realm.handle_hello(
        a.conn,
        a.peer.clone(),
        Harness::info(a.serializer),
        details,
        0,
        h.now + limits::HANDSHAKE_TIMEOUT,
        h.now,
    );
    h.take(&mut a);
    let sub = h.subscribe(&mut a, "com.t");
    let mut config = realm_config(None);
    config.roles = vec![role("anonymous", Allow::default())];
    h.realm.handle_config(config, h.now);
    // UNSUBSCRIBED with request 0 (the spec's revocation form): read as JSON text, since the
    // message type's decoder wants a request id.
    let Some(Outbound::Message(bytes)) = a.rx.try_recv() else {
        panic!("nothing sent to the subscriber");
    };
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let expected = format!(
        r#"[35,0,{{"reason":"{}","subscription":{sub}}}]"#,
        uris::NOT_AUTHORIZED
    );
    assert_eq!(text, expected);
}

/// A permission added applies to the next request of a session joined before: the denial
/// cached for the session (its role's permission matched the URI) is forgotten.
#[test]
fn an_added_permission_applies_at_once() {
    let mut config = realm_config(None);
    config.roles = vec![role(
        "anonymous",
        Allow {
            subscribe: true,
            ..Allow::default()
        },
    )];
    let mut h = Harness::new(config.clone());
    let mut a = h.connect(Serializer::Cbor);
    h.join(&mut a);
    publish(&mut h, &mut a, 1, "com.t");
    assert_eq!(error_for(&h.take(&mut a), 1), Some(uris::NOT_AUTHORIZED));
    config.roles = vec![role("anonymous", ALL)];
    h.realm.handle_config(config, h.now);
    publish(&mut h, &mut a, 2, "com.t");
    assert!(published(&h.take(&mut a), 2));
}

/// A session whose role was removed stays joined without any permission, its subscriptions
/// revoked; a new session for the removed role is refused; sessions of other roles are not
/// touched (their cached decisions stay valid).
#[test]
fn a_removed_role_loses_every_permission() {
    let mut config = realm_config(None);
    config.roles.push(allow_all_role("other"));
    let mut h = Harness::new(config);
    let mut a = h.connect(Serializer::Json);
    h.join(&mut a);
    h.subscribe(&mut a, "com.t");
    let mut config = realm_config(None);
    config.roles = vec![allow_all_role("other")];
    h.realm.handle_config(config, h.now);
    assert_eq!(h.realm.session_count(), 1);
    publish(&mut h, &mut a, 1, "com.t");
    assert_eq!(error_for(&h.take(&mut a), 1), Some(uris::NOT_AUTHORIZED));
    call(&mut h, &mut a, 2, "com.p");
    assert_eq!(error_for(&h.take(&mut a), 2), Some(uris::NOT_AUTHORIZED));
    assert!(!a.closed);
    // Anonymous clients authenticate as "anonymous", which is gone.
    let mut late = h.connect(Serializer::Json);
    h.realm.handle_hello(
        late.conn,
        late.peer.clone(),
        Harness::info(late.serializer),
        dict! {"roles" => Value::Dict(dict! {"caller" => Value::Dict(Dict::new())})},
        0,
        h.now + limits::HANDSHAKE_TIMEOUT,
        h.now,
    );
    assert!(matches!(
        h.take(&mut late).as_slice(),
        [Message::Abort { reason, .. }] if reason == uris::NO_SUCH_ROLE
    ));
}

/// A change of the counting settings closes every joined session's cycle at the reload; the
/// next cycle counts under the new settings (here a duration trigger, armed from the reload).
/// The totals over all cycles stay exact.
#[test]
fn changed_stats_settings_close_the_current_cycle() {
    let mut h = Harness::new(realm_config(stats(|_| {})));
    let (mut m, subs) = monitor(&mut h);
    let mut c = h.connect(Serializer::Json);
    let sid = h.join(&mut c);
    h.subscribe(&mut c, "com.t");
    let before = stats_for(&meta_events(&h.take(&mut m), &subs), sid);
    assert_eq!(before.len(), 1, "the join snapshot");

    h.advance(Duration::from_secs(5));
    h.realm.handle_config(
        realm_config(stats(|s| {
            s.trigger_after_duration = 10;
            s.rated_message_size = 64;
        })),
        h.now,
    );
    let at_reload = stats_for(&meta_events(&h.take(&mut m), &subs), sid);
    assert_eq!(at_reload.len(), 1, "the cycle closed at the reload");
    assert_eq!(int(&at_reload[0], "messages"), 2, "SUBSCRIBE, SUBSCRIBED");
    assert_eq!(at_reload[0]["last"], Value::Bool(false));
    assert_eq!(int(&at_reload[0], "duration"), 5_000_000_000);

    h.advance(Duration::from_millis(9_999));
    assert!(stats_for(&meta_events(&h.take(&mut m), &subs), sid).is_empty());
    h.advance(Duration::from_millis(1));
    let by_timer = stats_for(&meta_events(&h.take(&mut m), &subs), sid);
    assert_eq!(
        by_timer.len(),
        1,
        "the new duration trigger, from the reload"
    );
    assert_eq!(int(&by_timer[0], "duration"), 10_000_000_000);

    // A message counted under the new unit (64 bytes), then the final snapshot: the sum of
    // the cycles is still the client's total.
    h.subscribe(&mut c, "com.u");
    h.send(
        &mut c,
        Message::Goodbye {
            details: Dict::new(),
            reason: uris::CLOSE_NORMAL.into(),
        },
    );
    h.pump(&mut c);
    let rest = stats_for(&meta_events(&h.take(&mut m), &subs), sid);
    let all: Vec<Dict> = before
        .into_iter()
        .chain(at_reload)
        .chain(by_timer)
        .chain(rest)
        .collect();
    assert_eq!(all.last().unwrap()["last"], Value::Bool(true));
    let total: u64 = all.iter().map(|s| int(s, "bytes")).sum();
    assert_eq!(total, c.totals().1);
    let last = all.last().unwrap();
    assert!(int(last, "rated_messages") >= int(last, "messages"));
}

/// Only `trigger_on_join`/`trigger_on_leave` changed: no cycle is closed at the reload; the
/// next session to join follows the new `trigger_on_join`.
#[test]
fn changed_join_and_leave_triggers_close_nothing() {
    let mut h = Harness::new(realm_config(stats(|_| {})));
    let (mut m, subs) = monitor(&mut h);
    let mut c = h.connect(Serializer::Json);
    let sid = h.join(&mut c);
    h.take(&mut m);
    h.realm
        .handle_config(realm_config(stats(|s| s.trigger_on_join = false)), h.now);
    assert!(stats_for(&meta_events(&h.take(&mut m), &subs), sid).is_empty());
    let mut d = h.connect(Serializer::Json);
    let did = h.join(&mut d);
    assert!(
        stats_for(&meta_events(&h.take(&mut m), &subs), did).is_empty(),
        "no join snapshot any more"
    );
}

/// Metering turned off: each joined session's cycle is closed with its final snapshot and no
/// more follow. Turned on again: only sessions joining afterwards are metered.
#[test]
fn stats_turned_off_and_on() {
    let mut h = Harness::new(realm_config(stats(|s| s.trigger_after_duration = 1)));
    let (mut m, subs) = monitor(&mut h);
    let mut c = h.connect(Serializer::Json);
    let sid = h.join(&mut c);
    h.take(&mut m);
    h.realm.handle_config(realm_config(None), h.now);
    let last = stats_for(&meta_events(&h.take(&mut m), &subs), sid);
    assert_eq!(last.len(), 1);
    assert_eq!(last[0]["last"], Value::Bool(true));
    h.advance(Duration::from_secs(3));
    assert!(
        stats_for(&meta_events(&h.take(&mut m), &subs), sid).is_empty(),
        "the duration trigger is gone"
    );

    h.realm
        .handle_config(realm_config(stats(|s| s.trigger_after_duration = 1)), h.now);
    let mut d = h.connect(Serializer::Json);
    let did = h.join(&mut d);
    h.advance(Duration::from_secs(1));
    let events = meta_events(&h.take(&mut m), &subs);
    assert!(
        stats_for(&events, sid).is_empty(),
        "joined before: unmetered"
    );
    assert_eq!(
        stats_for(&events, did).len(),
        2,
        "join snapshot, then the timer"
    );
}

/// Per-session limits from the new configuration apply to the next request.
#[test]
fn new_session_limits_apply_to_the_next_request() {
    let mut h = Harness::new(realm_config(None));
    h.realm.set_session_limits(limits::SessionLimits {
        max_subscriptions: 1,
        ..limits::SessionLimits::default()
    });
    let mut a = h.connect(Serializer::Json);
    h.join(&mut a);
    h.subscribe(&mut a, "com.a");
    h.send(
        &mut a,
        Message::Subscribe {
            request: 7,
            options: Dict::new(),
            topic: "com.b".into(),
        },
    );
    assert_eq!(error_for(&h.take(&mut a), 7), Some(limits::LIMIT_EXCEEDED));
    // The configuration carries the default limits: a reload restores them.
    h.realm.handle_config(realm_config(None), h.now);
    h.subscribe(&mut a, "com.b");
}

/// Options and event histories: WELCOME of later sessions announces the new features, a
/// history configured before and after keeps its events.
#[test]
fn options_and_event_history_apply_to_later_sessions() {
    let mut config = realm_config(None);
    config.event_history = vec![turnstile_config::EventHistoryConfig {
        uri: "com.h".into(),
        match_policy: MatchPolicy::Exact,
        limit: 10,
    }];
    let mut h = Harness::new(config.clone());
    let mut a = h.connect(Serializer::Json);
    h.join(&mut a);
    publish(&mut h, &mut a, 1, "com.h");
    h.take(&mut a);
    config.options.enable_meta_api = false;
    config.event_history[0].limit = 5;
    h.realm.handle_config(config.clone(), h.now);
    // A session joining now is told there is no meta API.
    let mut b = h.connect(Serializer::Json);
    h.realm.handle_hello(
        b.conn,
        b.peer.clone(),
        Harness::info(b.serializer),
        dict! {"roles" => Value::Dict(dict! {"caller" => Value::Dict(Dict::new())})},
        0,
        h.now + limits::HANDSHAKE_TIMEOUT,
        h.now,
    );
    let got = h.take(&mut b);
    let [Message::Welcome { details, .. }] = got.as_slice() else {
        panic!("no WELCOME: {got:?}");
    };
    let features = &details["roles"].as_dict().unwrap()["broker"]
        .as_dict()
        .unwrap()["features"];
    assert!(!features.as_dict().unwrap().contains_key("session_meta_api"));
    config.options.enable_meta_api = true;
    h.realm.handle_config(config, h.now);
    let sub = h.subscribe(&mut a, "com.h");
    h.send(
        &mut a,
        Message::Call {
            request: 3,
            options: Dict::new(),
            procedure: "wamp.subscription.get_events".into(),
            args: Some(vec![Value::from(sub)]),
            kwargs: None,
        },
    );
    let got = h.take(&mut a);
    let Some(Message::Result {
        args: Some(args), ..
    }) = got
        .iter()
        .find(|m| matches!(m, Message::Result { request: 3, .. }))
    else {
        panic!("no RESULT: {got:?}");
    };
    assert_eq!(args[0].as_list().map(Vec::len), Some(1), "{args:?}");
}

/// A realm removed from the configuration says GOODBYE `wamp.close.close_realm` to its
/// sessions and is drained once they answered.
#[test]
fn a_removed_realm_says_goodbye_to_its_sessions() {
    let mut h = Harness::new(realm_config(stats(|_| {})));
    let mut a = h.connect(Serializer::Json);
    h.join(&mut a);
    h.realm.handle_removed(h.now);
    let got = h.take(&mut a);
    assert!(
        matches!(got.as_slice(), [Message::Goodbye { reason, .. }] if reason == uris::CLOSE_REALM),
        "{got:?}"
    );
    assert!(!h.realm.is_drained());
    h.send(
        &mut a,
        Message::Goodbye {
            details: Dict::new(),
            reason: uris::CLOSE_GOODBYE_AND_OUT.into(),
        },
    );
    h.pump(&mut a);
    assert!(a.closed);
    assert!(h.realm.is_drained());
    // A HELLO that was on its way is refused: the realm does not exist any more.
    let mut late = h.connect(Serializer::Json);
    h.realm.handle_hello(
        late.conn,
        late.peer.clone(),
        Harness::info(late.serializer),
        dict! {"roles" => Value::Dict(dict! {"caller" => Value::Dict(Dict::new())})},
        0,
        h.now + limits::HANDSHAKE_TIMEOUT,
        h.now,
    );
    assert!(matches!(
        h.take(&mut late).as_slice(),
        [Message::Abort { reason, .. }] if reason == uris::NO_SUCH_REALM
    ));
}
