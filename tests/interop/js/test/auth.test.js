// Authentication and dynamic authorization with wampy.js 8.0.2 and its plugins wampy-cra 0.2.0
// (WAMP-CRA) and wampy-cryptosign 0.1.0 (WAMP-Cryptosign), against the Turnstile router:
// anonymous, ticket, wampcra (plain and salted) and cryptosign, static and dynamic (the dynamic
// authenticator is itself a wampy client), several methods on one transport, refusals, principals
// bound to another realm, and a dynamic authorizer (a wampy client too) that allows, denies,
// throws and caches. wampy speaks WAMP over WebSocket only (it has no RawSocket transport); the
// RawSocket side of authentication is covered by tests/interop/python/test_auth.py.
//
// wampy notes:
// - wampy sends authid/authmethods/authextra in HELLO only when `authid` is set, and refuses (on
//   the client side, NoCRACallbackOrIdError) an authid without non-empty authmethods and an
//   onChallenge callback or authPlugins: all three or none.
// - `authMode: 'auto'` answers CHALLENGE with `authPlugins[method](method, extra)`; wampy-cra's
//   `sign(secret)` derives the key itself when CHALLENGE.extra has a salt; wampy-cryptosign's
//   `sign(seedHex)` signs but does not put the public key into HELLO: pass it in `authextra.pubkey`.
// - An ABORT rejects `connect()` with an AbortError: `name` "AbortedError", `errorUri`, `details`.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { after, afterEach, before, describe, it } from 'node:test';

import { Wampy } from 'wampy';
import { JsonSerializer } from 'wampy/JsonSerializer.js';
import { MsgpackSerializer } from 'wampy/MsgpackSerializer.js';
import * as wampyCra from 'wampy-cra';
import * as wampyCryptosign from 'wampy-cryptosign';
import WebSocket from 'ws';

import { T, eventually, startRouter, within } from '../lib/router.js';

const TEST_TIMEOUT = 6 * T;
const FAILED = 'wamp.error.authentication_failed';
const NOT_AUTHORIZED = 'wamp.error.not_authorized';

// ---- credentials ------------------------------------------------------------------------------

/** A deterministic Ed25519 key pair: { seed, pub } in hex (the public key by node:crypto). */
function keypair(n) {
  const seed = Buffer.alloc(32, n);
  const pkcs8 = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]);
  const priv = crypto.createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' });
  const pub = crypto.createPublicKey(priv).export({ format: 'der', type: 'spki' }).subarray(-32);
  return { seed: seed.toString('hex'), pub: pub.toString('hex') };
}

const TICKET_ALICE = 'js-tkt-Alice-5d2c';
const TICKET_BOB = 'js-tkt-Bob-93e1'; // realm2 only
const TICKET_ZED = 'js-tkt-Zed-0f4a'; // role with a dynamic authorizer
const CRA_CAROL = 'js-cra-Carol-77b0';
const DAVE_PASSWORD = 'js-pw-Dave-1c9e';
const DAVE_SALT = 'js-salt-Dave';
const DAVE_ITERATIONS = 200;
const DAVE_KEYLEN = 32;
const WRONG = 'js-wrong-Secret-beef';
const FRANK = keypair(11);
const GRACE = keypair(12); // realm2 only
const STRANGER = keypair(19);
const DYN_KEY = keypair(15);
const DYN_TICKET = 'js-dyn-tkt-4411';
const DYN_CRA = 'js-dyn-cra-8822';
const DYN_DAVE_PASSWORD = 'js-dyn-pw-Dave-66aa';
const DYN_DAVE_SALT = 'js-dyn-salt';

const AUTHENTICATE = 'com.test.js.authenticate';
const AUTHORIZE = 'com.test.js.authorize';

const ALL = { call: true, register: true, publish: true, subscribe: true };
const role = (name, allow = ALL) => ({
  name,
  permissions: [{
    uri: '', match: 'prefix', allow, disclose: { caller: false, publisher: false }, cache: true,
  }],
});
const dynamic = { type: 'dynamic', authenticator: AUTHENTICATE };

const AUTHS = {
  static: {
    anonymous: { type: 'static', role: 'guest', authid: 'the-guest' },
    ticket: {
      type: 'static',
      principals: {
        alice: { ticket: TICKET_ALICE, role: 'user' },
        bob: { ticket: TICKET_BOB, role: 'user', realm: 'realm2' },
        zed: { ticket: TICKET_ZED, role: 'authorized' },
      },
    },
    wampcra: {
      type: 'static',
      users: {
        carol: { secret: CRA_CAROL, role: 'user' },
        dave: {
          secret: DAVE_PASSWORD, // the password itself, as in Crossbar: the router derives the key
          role: 'user', salt: DAVE_SALT, iterations: DAVE_ITERATIONS, keylen: DAVE_KEYLEN,
        },
      },
    },
    cryptosign: {
      type: 'static',
      principals: {
        frank: { authorized_keys: [FRANK.pub], role: 'user' },
        grace: { authorized_keys: [GRACE.pub], role: 'user', realm: 'realm2' },
      },
    },
  },
  ticketonly: {
    ticket: { type: 'static', principals: { alice: { ticket: TICKET_ALICE, role: 'user' } } },
  },
  dynamic: { anonymous: dynamic, ticket: dynamic, wampcra: dynamic, cryptosign: dynamic },
};

function configure(config) {
  const worker = config.workers[0];
  worker.realms = [
    {
      name: 'realm1',
      roles: [
        role('anonymous'),
        role('user'),
        role('guest', { call: false, register: false, publish: false, subscribe: true }),
        { name: 'authorized', authorizer: AUTHORIZE },
      ],
      options: { enable_meta_api: true },
    },
    { name: 'realm2', roles: [role('anonymous'), role('user')] },
  ];
  const web = worker.transports.find((t) => t.type === 'web');
  for (const [name, auth] of Object.entries(AUTHS)) {
    web.paths[name] = { type: 'websocket', serializers: ['json', 'msgpack', 'cbor'], auth };
  }
}

// ---- clients ----------------------------------------------------------------------------------

const SERIALIZERS = { json: () => new JsonSerializer(), msgpack: () => new MsgpackSerializer() };

let router;
let clients = [];

before(async () => {
  router = await startRouter({ configure });
});

after(async () => {
  if (router) {
    const exit = await router.stop();
    assert.ok(exit === null || exit.code === 0, `router exit ${JSON.stringify(exit)}; stderr:\n${router.stderr()}`);
  }
});

afterEach(async () => {
  await Promise.allSettled(clients.map((c) => within(c.disconnect(), 'disconnect', 2000)));
  clients = [];
});

/** A wampy client on the web path `path` (not connected yet). */
function client(path, serializer, options = {}) {
  const w = new Wampy(`ws://127.0.0.1:${router.wsPort}/${path}`, {
    ws: WebSocket,
    realm: 'realm1',
    autoReconnect: false,
    serializer: SERIALIZERS[serializer](),
    ...options,
  });
  clients.push(w);
  return w;
}

/** Connects; resolves to WELCOME.Details. */
async function join(path, serializer, options) {
  const w = client(path, serializer, options);
  let details;
  try {
    details = await within(w.connect(), `wampy connect to /${path}`);
  } catch (e) {
    throw new Error(`${e.name}: ${e.errorUri || ''} ${e.details?.message || e.message || e}; router stderr:\n${router.stderr()}`);
  }
  assert.equal(w._ws.protocol, `wamp.2.${serializer}`);
  return { w, details };
}

/** Connects and expects ABORT `reason`; resolves to the AbortError. */
async function refused(path, serializer, options, reason = FAILED) {
  const w = client(path, serializer, options);
  let details;
  try {
    details = await within(w.connect(), `wampy connect to /${path}`);
  } catch (e) {
    assert.equal(e.name, 'AbortedError', `${e}`);
    assert.equal(e.errorUri, reason, `ABORT ${e.errorUri}: ${e.details?.message}`);
    assert.ok(typeof e.details?.message === 'string' && e.details.message.length > 0, JSON.stringify(e.details));
    return e;
  }
  throw new Error(`expected ABORT ${reason}, joined as ${JSON.stringify(details)}`);
}

function identity(details) {
  return [details.authid, details.authrole, details.authmethod, details.authprovider];
}

const ticket = (authid, t) => ({
  authid, authmethods: ['ticket'], authMode: 'auto', authPlugins: { ticket: () => t },
});
const cra = (authid, secret) => ({
  authid, authmethods: ['wampcra'], authMode: 'auto', authPlugins: { wampcra: wampyCra.sign(secret) },
});
const cryptosign = (authid, announced, signer) => ({
  authid,
  authmethods: ['cryptosign'],
  authextra: { pubkey: announced.pub },
  authMode: 'auto',
  authPlugins: { cryptosign: wampyCryptosign.sign(signer.seed) },
});

function secretsIn(text) {
  return [TICKET_ALICE, TICKET_BOB, TICKET_ZED, CRA_CAROL, DAVE_PASSWORD, WRONG, DYN_TICKET,
    DYN_CRA, DYN_DAVE_PASSWORD].filter((s) => text.includes(s));
}

// ---- static -----------------------------------------------------------------------------------

for (const serializer of ['json', 'msgpack']) {
  describe(`wampy ${serializer}: static authentication`, { timeout: TEST_TIMEOUT }, () => {
    it('anonymous: a client without authid joins with the configured role and authid', async () => {
      const { details } = await join('static', serializer);
      assert.deepEqual(identity(details), ['the-guest', 'guest', 'anonymous', 'static']);
    });

    it('ticket: the right ticket joins, and the session works', async () => {
      const { w, details } = await join('static', serializer, ticket('alice', TICKET_ALICE));
      assert.deepEqual(identity(details), ['alice', 'user', 'ticket', 'static']);
      await within(w.register(`com.test.js.auth.${serializer}`, ({ argsList }) => ({ argsList: [argsList[0] * 2] })), 'register');
      const r = await within(w.call(`com.test.js.auth.${serializer}`, [21]), 'call');
      assert.deepEqual(r.argsList, [42]);
    });

    it('wampcra (wampy-cra): a plain secret, and a salted password', async () => {
      let { details } = await join('static', serializer, cra('carol', CRA_CAROL));
      assert.deepEqual(identity(details), ['carol', 'user', 'wampcra', 'static']);
      const seen = [];
      const sign = wampyCra.sign(DAVE_PASSWORD);
      ({ details } = await join('static', serializer, {
        ...cra('dave', DAVE_PASSWORD),
        authPlugins: { wampcra: (method, extra) => { seen.push(extra); return sign(method, extra); } },
      }));
      assert.deepEqual(identity(details), ['dave', 'user', 'wampcra', 'static']);
      assert.deepEqual([seen[0].salt, seen[0].iterations, seen[0].keylen], [DAVE_SALT, DAVE_ITERATIONS, DAVE_KEYLEN]);
      assert.equal(JSON.parse(seen[0].challenge).authid, 'dave');
    });

    it('cryptosign (wampy-cryptosign): the principal\'s key joins', async () => {
      const { details } = await join('static', serializer, cryptosign('frank', FRANK, FRANK));
      assert.deepEqual(identity(details), ['frank', 'user', 'cryptosign', 'static']);
    });

    it('several methods: the first of the client\'s authmethods that the transport offers is used', async () => {
      const plugins = {
        ticket: () => TICKET_ALICE,
        wampcra: wampyCra.sign(CRA_CAROL),
      };
      let { details } = await join('static', serializer, {
        authid: 'carol', authmethods: ['wampcra', 'ticket'], authMode: 'auto', authPlugins: plugins,
      });
      assert.deepEqual(identity(details), ['carol', 'user', 'wampcra', 'static']);
      ({ details } = await join('static', serializer, {
        authid: 'alice', authmethods: ['scram', 'ticket', 'wampcra'], authMode: 'auto', authPlugins: plugins,
      }));
      assert.deepEqual(identity(details), ['alice', 'user', 'ticket', 'static']);
      ({ details } = await join('static', serializer, {
        authid: 'alice', authmethods: ['anonymous', 'ticket'], authMode: 'auto', authPlugins: plugins,
      }));
      assert.deepEqual(identity(details), ['the-guest', 'guest', 'anonymous', 'static']);
    });

    it('wrong ticket, unknown authid, wrong secret, wrong key: ABORT authentication_failed, no hint which', async () => {
      const byMethod = {
        ticket: [ticket('alice', WRONG), ticket('nobody', TICKET_ALICE)],
        wampcra: [cra('carol', WRONG), cra('dave', WRONG), cra('nobody', CRA_CAROL)],
        cryptosign: [
          cryptosign('frank', STRANGER, STRANGER),
          cryptosign('frank', GRACE, GRACE),
          cryptosign('nobody', FRANK, FRANK),
          cryptosign('frank', FRANK, STRANGER),
        ],
      };
      for (const [method, cases] of Object.entries(byMethod)) {
        const messages = new Set();
        for (const options of cases) {
          const e = await refused('static', serializer, options);
          messages.add(e.details.message);
          assert.deepEqual(secretsIn(e.details.message), []);
          assert.ok(!e.details.message.includes(options.authid), e.details.message);
        }
        assert.equal(messages.size, 1, `${method}: ${[...messages]}`);
      }
    });

    it('a principal bound to realm2 joins realm2 and is refused on realm1 with not_authorized', async () => {
      for (const options of [ticket('bob', TICKET_BOB), cryptosign('grace', GRACE, GRACE)]) {
        const { details } = await join('static', serializer, { ...options, realm: 'realm2' });
        assert.equal(details.realm, 'realm2');
        assert.equal(details.authrole, 'user');
        await refused('static', serializer, options, NOT_AUTHORIZED);
      }
    });

    it('a transport offering ticket only refuses anonymous with no_matching_auth_method', async () => {
      await refused('ticketonly', serializer, {}, 'wamp.error.no_matching_auth_method');
      const { details } = await join('ticketonly', serializer, ticket('alice', TICKET_ALICE));
      assert.deepEqual(identity(details), ['alice', 'user', 'ticket', 'static']);
    });
  });
}

// ---- dynamic ----------------------------------------------------------------------------------

/** The dynamic authenticator, registered by an anonymous wampy client on /ws. */
async function startAuthenticator(serializer) {
  const calls = [];
  const { w } = await join('ws', serializer);
  await within(w.register(AUTHENTICATE, ({ argsList }) => {
    const [realm, authid, details] = argsList;
    calls.push({ realm, authid, details });
    const deny = (uri) => { throw { error: uri, argsList: ['denied'] }; };
    switch (details.authmethod) {
      case 'anonymous':
        return { argsList: [{ role: 'user', extra: { greeting: 'hello' } }] };
      case 'ticket':
        if (authid === 'dyn-alice' && details.ticket === DYN_TICKET) {
          return { argsList: [{ role: 'user', extra: { via: 'ticket' } }] };
        }
        return deny('com.test.bad_ticket');
      case 'wampcra':
        if (authid === 'dyn-carol') return { argsList: [{ role: 'user', secret: DYN_CRA }] };
        if (authid === 'dyn-dave') {
          return {
            argsList: [{
              role: 'user',
              secret: DYN_DAVE_PASSWORD,
              salt: DYN_DAVE_SALT,
              iterations: 100,
              keylen: 32,
            }],
          };
        }
        return deny('com.test.no_such_user');
      case 'cryptosign':
        if (details.authextra?.pubkey === DYN_KEY.pub) {
          return { argsList: [{ role: 'user', authid: 'dyn-frank', extra: { via: 'cryptosign' } }] };
        }
        return deny('com.test.unknown_key');
      default:
        return deny('com.test.unexpected');
    }
  }), 'register the authenticator');
  return calls;
}

for (const serializer of ['json', 'msgpack']) {
  describe(`wampy ${serializer}: dynamic authentication`, { timeout: TEST_TIMEOUT }, () => {
    it('anonymous: the authenticator decides the role and authextra', async () => {
      const calls = await startAuthenticator(serializer);
      const { details } = await join('dynamic', serializer, {
        authid: 'visitor', authmethods: ['anonymous'], authMode: 'auto', authPlugins: { anonymous: () => '' },
      });
      assert.deepEqual(identity(details), ['visitor', 'user', 'anonymous', 'dynamic']);
      assert.deepEqual(details.authextra, { greeting: 'hello' });
      assert.equal(calls.length, 1);
      assert.equal(calls[0].realm, 'realm1');
      assert.equal(calls[0].authid, 'visitor');
      assert.equal(calls[0].details.transport.channel_framing, 'websocket');
    });

    it('ticket: the authenticator checks details.ticket', async () => {
      const calls = await startAuthenticator(serializer);
      const { details } = await join('dynamic', serializer, ticket('dyn-alice', DYN_TICKET));
      assert.deepEqual(identity(details), ['dyn-alice', 'user', 'ticket', 'dynamic']);
      assert.deepEqual(details.authextra, { via: 'ticket' });
      assert.equal(calls[0].details.ticket, DYN_TICKET);
      const wrong = await refused('dynamic', serializer, ticket('dyn-alice', WRONG));
      const unknown = await refused('dynamic', serializer, ticket('nobody', DYN_TICKET));
      assert.equal(wrong.details.message, unknown.details.message);
    });

    it('wampcra (wampy-cra): the authenticator returns the secret, plain or salted', async () => {
      await startAuthenticator(serializer);
      let { details } = await join('dynamic', serializer, cra('dyn-carol', DYN_CRA));
      assert.deepEqual(identity(details), ['dyn-carol', 'user', 'wampcra', 'dynamic']);
      ({ details } = await join('dynamic', serializer, cra('dyn-dave', DYN_DAVE_PASSWORD)));
      assert.deepEqual(identity(details), ['dyn-dave', 'user', 'wampcra', 'dynamic']);
      await refused('dynamic', serializer, cra('dyn-carol', WRONG));
      await refused('dynamic', serializer, cra('nobody', DYN_CRA));
    });

    it('cryptosign (wampy-cryptosign): the authenticator decides by the public key', async () => {
      await startAuthenticator(serializer);
      const { details } = await join('dynamic', serializer, cryptosign('anyone', DYN_KEY, DYN_KEY));
      assert.deepEqual(identity(details), ['dyn-frank', 'user', 'cryptosign', 'dynamic']);
      assert.deepEqual(details.authextra, { via: 'cryptosign' });
      await refused('dynamic', serializer, cryptosign('anyone', STRANGER, STRANGER));
      await refused('dynamic', serializer, cryptosign('anyone', DYN_KEY, STRANGER));
    });
  });
}

describe('wampy: dynamic authentication without an authenticator', { timeout: TEST_TIMEOUT }, () => {
  it('is refused with authentication_failed', async () => {
    await refused('dynamic', 'json', ticket('dyn-alice', DYN_TICKET));
  });
});

// ---- dynamic authorization --------------------------------------------------------------------

/** The dynamic authorizer of role `authorized`, registered by an anonymous wampy client, which
 * also registers the procedures that zed calls. */
async function startAuthorizer() {
  const calls = [];
  const { w } = await join('ws', 'json');
  await within(w.register(AUTHORIZE, ({ argsList }) => {
    const [session, uri, action] = argsList;
    calls.push({ session, uri, action });
    if (uri.startsWith('com.js.authz.allow.')) return { argsList: [true] };
    if (uri.startsWith('com.js.authz.deny.')) return { argsList: [false] };
    if (uri.startsWith('com.js.authz.cache.')) return { argsList: [{ allow: true, cache: true }] };
    if (uri.startsWith('com.js.authz.throw.')) throw { error: 'com.test.authorizer_broke', argsList: ['boom'] };
    return { argsList: [false] };
  }), 'register the authorizer');
  for (const p of ['allow', 'deny', 'cache', 'throw']) {
    await within(w.register(`com.js.authz.${p}.echo`, ({ argsList }) => ({ argsList })), `register ${p}`);
  }
  const count = (uri, action) => calls.filter((c) => c.uri === uri && c.action === action).length;
  return { calls, count, component: w };
}

async function assertDenied(promise, what) {
  await assert.rejects(within(promise, what), (e) => {
    assert.equal(e.errorUri, NOT_AUTHORIZED, `${what}: ${e}`);
    return true;
  });
}

describe('wampy: dynamic authorizer', { timeout: TEST_TIMEOUT }, () => {
  it('allows: call, register, subscribe and publish go through; it sees the session details', async () => {
    const authz = await startAuthorizer();
    const { w: zed, details } = await join('static', 'json', ticket('zed', TICKET_ZED));
    assert.deepEqual(identity(details), ['zed', 'authorized', 'ticket', 'static']);
    const r = await within(zed.call('com.js.authz.allow.echo', [1, 'a']), 'call');
    assert.deepEqual(r.argsList, [1, 'a']);
    await within(zed.register('com.js.authz.allow.mine', () => ({ argsList: ['mine'] })), 'register');
    const got = [];
    await within(zed.subscribe('com.js.authz.allow.topic', ({ argsList }) => got.push(argsList)), 'subscribe');
    await within(authz.component.publish('com.js.authz.allow.topic', ['hi']), 'publish by the component');
    await within(zed.publish('com.js.authz.allow.other', ['x']), 'publish');
    await eventually(() => got.length === 1, 'the event');
    assert.deepEqual((await within(authz.component.call('com.js.authz.allow.mine'), 'call zed')).argsList, ['mine']);
    assert.deepEqual(authz.calls.map((c) => [c.uri, c.action]), [
      ['com.js.authz.allow.echo', 'call'],
      ['com.js.authz.allow.mine', 'register'],
      ['com.js.authz.allow.topic', 'subscribe'],
      ['com.js.authz.allow.other', 'publish'],
    ]);
    const s = authz.calls[0].session;
    assert.deepEqual([s.authid, s.authrole, s.authmethod, s.authprovider], ['zed', 'authorized', 'ticket', 'static']);
  });

  it('denies and throws: ERROR not_authorized, and the session goes on', async () => {
    await startAuthorizer();
    const { w: zed } = await join('static', 'json', ticket('zed', TICKET_ZED));
    for (const p of ['deny', 'throw']) {
      await assertDenied(zed.call(`com.js.authz.${p}.echo`, [1]), `call ${p}`);
      await assertDenied(zed.register(`com.js.authz.${p}.mine`, () => ({})), `register ${p}`);
      await assertDenied(zed.subscribe(`com.js.authz.${p}.topic`, () => {}), `subscribe ${p}`);
      await assertDenied(zed.publish(`com.js.authz.${p}.topic`, [1]), `publish ${p}`);
    }
    assert.deepEqual((await within(zed.call('com.js.authz.allow.echo', [2]), 'call')).argsList, [2]);
  });

  it('caches: a cacheable decision is asked once per session, URI and action', async () => {
    const authz = await startAuthorizer();
    const { w: zed } = await join('static', 'json', ticket('zed', TICKET_ZED));
    for (let i = 0; i < 3; i++) {
      assert.deepEqual((await within(zed.call('com.js.authz.cache.echo', [i]), 'cached call')).argsList, [i]);
      assert.deepEqual((await within(zed.call('com.js.authz.allow.echo', [i]), 'uncached call')).argsList, [i]);
    }
    assert.equal(authz.count('com.js.authz.cache.echo', 'call'), 1);
    assert.equal(authz.count('com.js.authz.allow.echo', 'call'), 3);
    const { w: other } = await join('static', 'msgpack', ticket('zed', TICKET_ZED));
    await within(other.call('com.js.authz.cache.echo', [0]), 'call by another session');
    assert.equal(authz.count('com.js.authz.cache.echo', 'call'), 2);
  });
});
