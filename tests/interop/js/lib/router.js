// Start and stop a Turnstile router for the wampy.js interop tests, the same way the Python
// fixture does: a generated config on free ports, readiness by polling the TCP ports, SIGTERM
// (then SIGKILL) to stop, and the router's stderr in every error message.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');

/** Milliseconds allowed for one awaited step of a test. */
export const T = Number(process.env.INTEROP_TIMEOUT || 5) * 1000;

export function routerBinary() {
  if (process.env.TURNSTILE_BIN) return process.env.TURNSTILE_BIN;
  const target = process.env.CARGO_TARGET_DIR
    ? path.resolve(REPO, process.env.CARGO_TARGET_DIR)
    : path.join(REPO, 'target');
  return path.join(target, 'debug', 'turnstile');
}

/** Rejects after `ms` milliseconds with a readable message. */
export function within(promise, what = 'operation', ms = T) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Polls `predicate` until it is true, or rejects after `ms`. */
export async function eventually(predicate, what = 'condition', ms = T) {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function freePorts(n) {
  const servers = [];
  try {
    for (let i = 0; i < n; i++) {
      const srv = net.createServer();
      await new Promise((resolve, reject) => {
        srv.once('error', reject);
        srv.listen(0, '127.0.0.1', resolve);
      });
      servers.push(srv);
    }
    return servers.map((s) => s.address().port);
  } finally {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  }
}

function canConnect(port) {
  return new Promise((resolve) => {
    const sock = net.connect({ port, host: '127.0.0.1' });
    sock.setTimeout(200);
    sock.once('connect', () => { sock.destroy(); resolve(true); });
    sock.once('error', () => resolve(false));
    sock.once('timeout', () => { sock.destroy(); resolve(false); });
  });
}

const ALL = { call: true, register: true, publish: true, subscribe: true };

function nodeConfig(wsPort, rsPort, unixPath) {
  const serializers = ['json', 'msgpack', 'cbor'];
  return {
    version: 2,
    controller: {},
    workers: [{
      type: 'router',
      realms: [{
        name: 'realm1',
        roles: [{
          name: 'anonymous',
          permissions: [{
            uri: '', match: 'prefix', allow: ALL,
            disclose: { caller: false, publisher: false }, cache: true,
          }],
        }],
        options: { enable_meta_api: true },
      }],
      transports: [
        {
          type: 'web',
          endpoint: { type: 'tcp', interface: '127.0.0.1', port: wsPort },
          paths: { ws: { type: 'websocket', serializers } },
        },
        {
          type: 'rawsocket',
          endpoint: { type: 'tcp', interface: '127.0.0.1', port: rsPort },
          serializers,
        },
        {
          type: 'rawsocket',
          endpoint: { type: 'unix', path: unixPath },
          serializers,
        },
      ],
    }],
  };
}

/**
 * Starts `turnstile start --config <generated>`; resolves to
 * `{ url, wsPort, rsPort, stderr(), stop() }` once the TCP ports accept connections.
 * `configure(config)`, if given, may change the generated config (realms, web paths) before it
 * is written.
 */
export async function startRouter({ attempts = 3, startupMs = 10000, configure } = {}) {
  const bin = routerBinary();
  if (!fs.existsSync(bin)) {
    throw new Error(`router binary ${bin} does not exist: run \`cargo build -p turnstile\` or set TURNSTILE_BIN`);
  }
  let lastError;
  for (let attempt = 0; attempt < attempts; attempt++) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ts-js-'));
    const [wsPort, rsPort] = await freePorts(2);
    const configPath = path.join(dir, 'config.json');
    const config = nodeConfig(wsPort, rsPort, path.join(dir, 'router.sock'));
    if (configure) configure(config);
    fs.writeFileSync(configPath, JSON.stringify(config, null, 2));
    const child = spawn(bin, ['start', '--config', configPath], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, RUST_BACKTRACE: '1' },
    });
    let stderr = '';
    child.stderr.on('data', (d) => { stderr = (stderr + d.toString()).slice(-65536); });
    let exited = null;
    const exitPromise = new Promise((resolve) => child.once('exit', (code, signal) => {
      exited = { code, signal };
      resolve(exited);
    }));
    const tail = () => stderr.split('\n').slice(-40).join('\n') || '(empty)';

    const router = {
      url: `ws://127.0.0.1:${wsPort}/ws`,
      wsPort,
      rsPort,
      stderr: tail,
      async stop(ms = 5000) {
        if (exited === null) {
          child.kill('SIGTERM');
          const done = await Promise.race([exitPromise, new Promise((r) => setTimeout(() => r(null), ms))]);
          if (done === null) {
            child.kill('SIGKILL');
            await exitPromise;
          }
        }
        fs.rmSync(dir, { recursive: true, force: true });
        return exited;
      },
    };

    const deadline = Date.now() + startupMs;
    const pending = new Set([wsPort, rsPort]);
    while (pending.size > 0 && exited === null && Date.now() < deadline) {
      for (const port of [...pending]) {
        if (await canConnect(port)) pending.delete(port);
      }
      if (pending.size > 0) await new Promise((r) => setTimeout(r, 50));
    }
    if (pending.size === 0 && exited === null) return router;

    const why = exited !== null
      ? `router exited early (code ${exited.code}, signal ${exited.signal})`
      : `router not listening on ${[...pending].join(', ')} after ${startupMs} ms`;
    await router.stop();
    lastError = new Error(`${why}; config ${configPath}; stderr:\n${tail()}`);
    if (!/in use/i.test(stderr)) break;
  }
  throw lastError;
}
