// The client side of the trust benchmark, in TypeScript so that it drives the real engine:
// bench/trust.mjs bundles it with esbuild (as scripts/limbo.mjs does) and imports it.
import { readFileSync } from 'node:fs';
import { Agent, request, type AgentOptions } from 'node:https';
import { performance } from 'node:perf_hooks';
import { readPrivateKeyFile } from '../src/core/identity/keys.js';
import { PATHS, TLS_CIPHERS, TLS_MIN_VERSION } from '../src/core/protocol/constants.js';
import { openState } from '../src/core/state/database.js';
import { loadIdentity } from '../src/core/state/identity-repository.js';
import { establishTrust } from '../src/core/trust/establish.js';

export interface Initiator {
  /** One full `trust establish`: new mTLS connection, info, challenge, signed answer, pinning. */
  establish(): Promise<void>;
  close(): void;
}

export function openInitiator(statePath: string, endpoint: string, fingerprint: string): Initiator {
  const store = openState(statePath, { create: false });
  const identity = store.read(loadIdentity);
  if (!identity) throw new Error(`no identity in ${statePath}`);
  const privateKey = readPrivateKeyFile(identity.keyPath);
  return {
    async establish() {
      const result = await establishTrust({
        store,
        identity,
        privateKey,
        endpoint,
        expectedFingerprint: fingerprint,
        confirm: () => Promise.reject(new Error('the benchmark never prompts')),
        timeoutMs: 10_000,
        now: () => new Date(),
      });
      if (result?.remoteStatus !== 'trusted') throw new Error('trust establish did not complete');
    },
    close: () => store.close(),
  };
}

export interface ClientCertificate {
  certPath: string;
  keyPath: string;
}

function agentOptions(
  client: ClientCertificate,
  keepAlive: boolean,
  sockets: number,
): AgentOptions {
  return {
    keepAlive,
    maxSockets: sockets,
    cert: readFileSync(client.certPath),
    key: readFileSync(client.keyPath),
    // The bare baseline checks nothing either; both sides pay the same handshake.
    rejectUnauthorized: false,
    minVersion: TLS_MIN_VERSION,
    ciphers: TLS_CIPHERS,
  };
}

function send(agent: Agent, url: URL, method: 'GET' | 'POST', path: string, body?: unknown) {
  return new Promise<number>((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const outgoing = request(
      {
        agent,
        host: url.hostname,
        port: url.port,
        method,
        path,
        headers: payload
          ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }
          : {},
        signal: AbortSignal.timeout(10_000),
      },
      (response) => {
        response.resume();
        response.on('end', () => resolve(response.statusCode ?? 0));
        response.on('error', reject);
      },
    );
    outgoing.on('error', reject);
    outgoing.end(payload);
  });
}

/**
 * The baseline of one establish round trip: a new mTLS connection carrying the same three
 * requests (info, challenge, answer) to a bare server that does no trust work.
 */
export async function bareRoundTrip(endpoint: string, client: ClientCertificate): Promise<void> {
  const url = new URL(endpoint);
  const agent = new Agent(agentOptions(client, true, 1));
  try {
    const answer = {
      challenge_id: '00000000-0000-4000-8000-000000000000',
      signature: 'A'.repeat(96),
      counter_nonce: 'B'.repeat(43),
      endpoint: 'https://127.0.0.1:1',
    };
    for (const [method, path, body] of [
      ['GET', PATHS.info, undefined],
      ['POST', PATHS.challenge, {}],
      ['POST', PATHS.trust, answer],
    ] as const) {
      const status = await send(agent, url, method, path, body);
      if (status !== 200) throw new Error(`bare server answered ${status}`);
    }
  } finally {
    agent.destroy();
  }
}

export interface LoadResult {
  requests: number;
  elapsedMs: number;
}

/**
 * `total` GET requests over `connections` keep-alive mTLS connections, as many in flight as
 * connections, bounded by a deadline. Every answer must be 200.
 */
export async function keepAliveLoad(options: {
  endpoint: string;
  path: string;
  client: ClientCertificate;
  connections: number;
  total: number;
  deadlineMs: number;
}): Promise<LoadResult> {
  const url = new URL(options.endpoint);
  const agent = new Agent(agentOptions(options.client, true, options.connections));
  // Open the connections first, so the figure is requests over warm connections.
  await Promise.all(
    Array.from({ length: options.connections }, () => send(agent, url, 'GET', options.path)),
  );
  let issued = 0;
  const started = performance.now();
  const deadline = started + options.deadlineMs;
  const worker = async () => {
    while (issued < options.total && performance.now() < deadline) {
      issued++;
      const status = await send(agent, url, 'GET', options.path);
      if (status !== 200) throw new Error(`${options.path} answered ${status}`);
    }
  };
  try {
    await Promise.all(Array.from({ length: options.connections }, worker));
  } finally {
    agent.destroy();
  }
  return { requests: issued, elapsedMs: performance.now() - started };
}
