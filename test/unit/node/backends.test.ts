import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Backends, type CallMetadata } from '../../../src/node/backends.js';
import type { HttpBackendSpec } from '../../../src/node/resources.js';

/** Upstream pools across a reload of the resources file (Backends.retainOnly). */

let server: Server;
let url: string;
const open = new Set<Socket>();

const META: CallMetadata = {
  correlationId: '0190f3a2-0000-7000-8000-000000000001',
  principal: 'ops@org-a.example',
  sourceNode: 'node-a',
  sourceSpiffeId: 'spiffe://org-a.example/sark/node/node-a',
  resource: 'inventory',
  capability: 'lookup',
};

function backend(timeout: number): HttpBackendSpec {
  return { type: 'http', method: 'POST', url, headers: {}, timeout, idempotent: false };
}

/** Waits (bounded) until the upstream holds `n` connections. */
async function connections(n: number): Promise<void> {
  const deadline = Date.now() + 3_000;
  while (open.size !== n) {
    if (Date.now() > deadline) throw new Error(`${open.size} connections open, expected ${n}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

beforeAll(async () => {
  server = createServer((_request, response) => {
    response.setHeader('content-type', 'application/json');
    response.end('{"ok":true}');
  });
  server.on('connection', (socket: Socket) => {
    open.add(socket);
    socket.on('close', () => open.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/lookup`;
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
});

describe('Backends.retainOnly', () => {
  it('keeps the pools the reloaded files still use, and closes the others', async () => {
    const backends = new Backends();
    try {
      const kept = backend(5_000);
      const dropped = backend(6_000);
      expect(await backends.run(kept, null, META)).toEqual({ ok: true, result: { ok: true } });
      expect(await backends.run(dropped, null, META)).toEqual({ ok: true, result: { ok: true } });
      // One kept-alive connection a pool (each timeout has a pool of its own).
      await connections(2);
      // The same URL and timeout in a new file's objects: the same pool.
      backends.retainOnly([{ backend: { ...kept }, tls: undefined }]);
      await connections(1);
      expect(await backends.run(kept, null, META)).toEqual({ ok: true, result: { ok: true } });
      await connections(1);
      backends.retainOnly([]);
      await connections(0);
      // A pool closed by a reload is made again when a later file uses its backend.
      expect(await backends.run(dropped, null, META)).toEqual({ ok: true, result: { ok: true } });
    } finally {
      await backends.close();
    }
  });
});
