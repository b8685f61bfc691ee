/**
 * undici's Pool and connector without the rest of undici. `import 'undici'` loads fetch,
 * WebSocket, the cache and mock layers and every interceptor: 130-200 ms on the machines here
 * before a one-shot `invoke` can send anything, against ~45 ms for these three modules
 * (docs/benchmarks.md). The paths are undici 7's own layout (lib/dispatcher, lib/core, lib/api);
 * the request method is attached to Dispatcher.prototype exactly as undici's index.js does.
 * They are imported statically so that the build bundles them into the CLI (scripts/build.mjs);
 * the daemon's `import 'undici'` stays external and never meets these copies, since the daemon
 * does not route. Any undici upgrade that moves these files fails every invoke test at once.
 */
import type { Pool as UndiciPool, buildConnector as UndiciBuildConnector } from 'undici';
// @ts-expect-error undici ships no types for its internal files (see above).
import DispatcherModule from 'undici/lib/dispatcher/dispatcher.js';
// @ts-expect-error as above
import apiRequest from 'undici/lib/api/api-request.js';
// @ts-expect-error as above
import PoolModule from 'undici/lib/dispatcher/pool.js';
// @ts-expect-error as above
import connectModule from 'undici/lib/core/connect.js';

const Dispatcher = DispatcherModule as { prototype: { request?: unknown } };

Dispatcher.prototype.request ??= apiRequest;

export const Pool = PoolModule as typeof UndiciPool;
export type Pool = UndiciPool;
export const buildConnector = connectModule as typeof UndiciBuildConnector;
// The connector type lives in buildConnector's namespace.
export type Connector = UndiciBuildConnector.connector;
