// wampy.js 8.0.2 (Node.js, `ws` as the WebSocket implementation) against the Turnstile router:
// pub/sub and RPC with JSON and with MessagePack, callee errors reaching the caller, and calls to
// unregistered procedures. Run with `node --test` in tests/interop/js (scripts/test does that).
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';

import { Wampy } from 'wampy';
import { JsonSerializer } from 'wampy/JsonSerializer.js';
import { MsgpackSerializer } from 'wampy/MsgpackSerializer.js';
import WebSocket from 'ws';

import { T, eventually, startRouter, within } from '../lib/router.js';

const SERIALIZERS = {
  json: () => new JsonSerializer(),
  // The stock serializer: msgpackr writes wampy's unset options (`undefined`) as the extension
  // value d4 00 00, which the router reads as absent (Crossbar drops the connection instead).
  msgpack: () => new MsgpackSerializer(),
  'msgpack-stock': () => new MsgpackSerializer(),
};

const TEST_TIMEOUT = 4 * T;

let router;
let clients = [];

before(async () => {
  router = await startRouter();
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

/** A connected wampy client; asserts the router agreed to the requested serializer. */
async function connect(serializer) {
  const w = new Wampy(router.url, {
    ws: WebSocket, // Node 20 has no global WebSocket: wampy needs the class passed in
    realm: 'realm1',
    autoReconnect: false,
    serializer: SERIALIZERS[serializer](),
  });
  clients.push(w);
  try {
    await within(w.connect(), `wampy connect (${serializer})`);
  } catch (e) {
    throw new Error(`${e.message || e}; router stderr:\n${router.stderr()}`);
  }
  // wampy silently falls back to JSON when the router picks another subprotocol
  assert.equal(w._ws.protocol, `wamp.2.${serializer.split('-')[0]}`);
  // msgpackr decodes integers >= 2^32 (sent as uint64) as BigInt, so ids may be BigInt
  const sid = w.getSessionId();
  assert.ok((Number.isInteger(sid) || typeof sid === 'bigint') && sid > 0, `session id ${sid}`);
  return w;
}

for (const serializer of ['json', 'msgpack']) {
  describe(`wampy ${serializer}`, { timeout: TEST_TIMEOUT }, () => {
    it('pub/sub: a subscriber receives every event in order with args and kwargs', async () => {
      const topic = `com.test.js.pubsub.${serializer}`;
      const sub = await connect(serializer);
      const pub = await connect(serializer);
      const got = [];
      await within(sub.subscribe(topic, ({ argsList, argsDict }) => got.push({ argsList, argsDict })), 'subscribe');
      const n = 20;
      for (let i = 0; i < n; i++) {
        // wampy always publishes with acknowledge: true
        const res = await within(pub.publish(topic, { argsList: [i, 'text'], argsDict: { i, nested: { ok: true } } }), 'publish');
        const pid = res.publicationId;
        assert.ok((Number.isInteger(pid) || typeof pid === 'bigint') && pid > 0, `publication id ${pid}`);
      }
      await eventually(() => got.length >= n, `${n} events`);
      assert.deepEqual(got, Array.from({ length: n }, (_, i) => ({
        argsList: [i, 'text'], argsDict: { i, nested: { ok: true } },
      })));
    });

    it('RPC: args and kwargs reach the callee and the result reaches the caller', async () => {
      const proc = `com.test.js.add.${serializer}`;
      const callee = await connect(serializer);
      const caller = await connect(serializer);
      await within(callee.register(proc, ({ argsList, argsDict }) => ({
        argsList: [argsList[0] + argsList[1]],
        argsDict: { echoed: argsDict },
      })), 'register');
      const res = await within(caller.call(proc, { argsList: [40, 2], argsDict: { s: 'héllo ✓', n: null } }), 'call');
      assert.deepEqual(res.argsList, [42]);
      assert.deepEqual(res.argsDict, { echoed: { s: 'héllo ✓', n: null } });
    });

    it('an error thrown by the callee reaches the caller with its URI, args and kwargs', async () => {
      const proc = `com.test.js.fails.${serializer}`;
      const callee = await connect(serializer);
      const caller = await connect(serializer);
      await within(callee.register(proc, () => {
        // wampy turns a thrown { error, argsList, argsDict } into an ERROR message
        throw { error: 'com.example.error.bad_thing', argsList: ['went wrong', 7], argsDict: { code: 42 } };
      }), 'register');
      await assert.rejects(within(caller.call(proc, [1]), 'call'), (e) => {
        assert.equal(e.name, 'CallError', String(e));
        assert.equal(e.errorUri, 'com.example.error.bad_thing'); // README says e.error; 8.0.2 has errorUri
        assert.deepEqual(e.argsList, ['went wrong', 7]);
        assert.deepEqual(e.argsDict, { code: 42 });
        return true;
      });
    });

    it('a call to an unregistered procedure gets wamp.error.no_such_procedure', async () => {
      const caller = await connect(serializer);
      await assert.rejects(within(caller.call(`com.test.js.nobody.${serializer}`, [1]), 'call'), (e) => {
        assert.equal(e.name, 'CallError', String(e));
        assert.equal(e.errorUri, 'wamp.error.no_such_procedure');
        return true;
      });
    });
  });
}

describe('wampy msgpack, stock serializer', { timeout: TEST_TIMEOUT }, () => {
  it('RPC works with the stock MsgpackSerializer', async () => {
    const callee = await connect('msgpack-stock');
    const caller = await connect('msgpack-stock');
    await within(callee.register('com.test.js.stock.echo', ({ argsList, argsDict }) => ({ argsList, argsDict })), 'register');
    const res = await within(caller.call('com.test.js.stock.echo', { argsList: [1, 'two'], argsDict: { three: 3 } }), 'call');
    assert.deepEqual(res.argsList, [1, 'two']);
    assert.deepEqual(res.argsDict, { three: 3 });
  });

  it('subscribe without options (msgpackr sends undefined option values as ext type 0)', async () => {
    const sub = await connect('msgpack-stock');
    const pub = await connect('json');
    const got = [];
    await within(sub.subscribe('com.test.js.stock.topic', ({ argsList }) => got.push(argsList)), 'subscribe');
    await within(pub.publish('com.test.js.stock.topic', ['hi']), 'publish');
    await eventually(() => got.length === 1, 'the event');
    assert.deepEqual(got, [['hi']]);
  });
});

describe('wampy across serializers', { timeout: TEST_TIMEOUT }, () => {
  it('a JSON publisher/caller and a MessagePack subscriber/callee interoperate', async () => {
    const js = await connect('json');
    const mp = await connect('msgpack');
    const got = [];
    await within(mp.subscribe('com.test.js.cross', ({ argsList, argsDict }) => got.push([argsList, argsDict])), 'subscribe');
    await within(mp.register('com.test.js.cross.upper', ({ argsList }) => ({ argsList: [argsList[0].toUpperCase()] })), 'register');
    await within(js.publish('com.test.js.cross', { argsList: [1.5, 'a'], argsDict: { k: [1, 2] } }), 'publish');
    await eventually(() => got.length === 1, 'the event');
    assert.deepEqual(got, [[[1.5, 'a'], { k: [1, 2] }]]);
    const res = await within(js.call('com.test.js.cross.upper', ['abc']), 'call');
    assert.deepEqual(res.argsList, ['ABC']);
  });
});
