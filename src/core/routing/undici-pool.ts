import { createRequire } from 'node:module';
import type { Pool as UndiciPool, buildConnector as UndiciBuildConnector } from 'undici';

/**
 * undici's Pool and connector without the rest of undici. `import 'undici'` loads fetch,
 * WebSocket, the cache and mock layers and every interceptor: 130-200 ms on the machines here
 * before a one-shot `invoke` can send anything, against ~45 ms for these three modules
 * (docs/benchmarks.md). The paths are undici 7's own layout (lib/dispatcher, lib/core, lib/api);
 * the request method is attached to Dispatcher.prototype exactly as undici's index.js does, so
 * loading all of undici elsewhere in the same process (the daemon's HTTP backends) agrees.
 * Any undici upgrade that moves these files fails every invoke test at once.
 */
const load = createRequire(import.meta.url);

const Dispatcher = load('undici/lib/dispatcher/dispatcher.js') as {
  prototype: { request?: unknown };
};
Dispatcher.prototype.request ??= load('undici/lib/api/api-request.js');

export const Pool = load('undici/lib/dispatcher/pool.js') as typeof UndiciPool;
export type Pool = UndiciPool;
export const buildConnector = load('undici/lib/core/connect.js') as typeof UndiciBuildConnector;
// The connector type lives in buildConnector's namespace.
export type Connector = UndiciBuildConnector.connector;
