/**
 * The daemon's audit writer thread (src/node/audit-pipeline.ts starts it). It owns its own
 * connection to the state file and commits every batch the main thread posts, grouping whatever
 * arrived while the previous commit was syncing into the next transaction.
 *
 * Why a thread: a synchronous=FULL commit blocks for the fsync (milliseconds here), and
 * better-sqlite3 is synchronous; on the main thread every connection of the daemon would wait
 * for it. Here the main thread goes on serving while the commit syncs.
 */
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { appendEvents, type AuditEventInput } from '../core/audit/events.js';
import { openState, type StateStore } from '../core/state/database.js';
import type { PipelineReply, PipelineRequest } from './audit-pipeline.js';

if (!parentPort) throw new Error('audit-worker runs only as a worker thread');
const port: MessagePort = parentPort;

const { statePath } = workerData as { statePath: string };
let store: StateStore;
try {
  store = openState(statePath, { create: false });
  port.postMessage({ kind: 'ready' } satisfies PipelineReply);
} catch (error) {
  port.postMessage({ kind: 'failed-to-open', message: String(error) } satisfies PipelineReply);
  process.exit(1);
}

let waiting: Array<Extract<PipelineRequest, { kind: 'append' }>> = [];
let scheduled = false;

port.on('message', (request: PipelineRequest) => {
  if (request.kind === 'close') {
    commitWaiting();
    store.close();
    port.close();
    return;
  }
  waiting.push(request);
  // Messages that arrived together are delivered in one turn: commit them in one transaction.
  if (!scheduled) {
    scheduled = true;
    setImmediate(commitWaiting);
  }
});

function commitWaiting(): void {
  scheduled = false;
  const batches = waiting;
  waiting = [];
  if (batches.length === 0) return;
  const ids = batches.map((batch) => batch.id);
  const events = batches.flatMap((batch) => JSON.parse(batch.events) as AuditEventInput[]);
  try {
    store.write((db) => appendEvents(db, events));
    port.postMessage({ kind: 'committed', ids } satisfies PipelineReply);
  } catch (error) {
    port.postMessage({
      kind: 'not-committed',
      ids,
      message: String(error),
    } satisfies PipelineReply);
  }
}
