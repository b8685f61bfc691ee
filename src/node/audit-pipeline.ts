import { Worker } from 'node:worker_threads';
import type { AuditEventInput, AuditSink } from '../core/audit/events.js';

/**
 * The daemon's audit sink when it runs from the built CLI: events go to a writer thread
 * (src/node/audit-worker.ts) that commits them with synchronous=FULL while this thread keeps
 * serving, so the fsync no longer stalls every connection (docs/benchmarks.md, invoke). The
 * guarantee is the one of the in-process AuditWriter: each append settles only once its own row
 * is committed, and the daemon answers only then.
 */

/** Main thread → writer thread. */
export type PipelineRequest =
  /** The events as one JSON string: cloning one string costs a fraction of cloning objects. */
  { kind: 'append'; id: number; events: string } | { kind: 'close' };

/** Writer thread → main thread. */
export type PipelineReply =
  | { kind: 'ready' }
  | { kind: 'failed-to-open'; message: string }
  | { kind: 'committed'; ids: number[] }
  | { kind: 'not-committed'; ids: number[]; message: string };

interface Waiter {
  resolve: () => void;
  reject: (error: Error) => void;
}

export class AuditPipeline implements AuditSink {
  private queued: Array<{ event: AuditEventInput; waiter: Waiter }> = [];
  private scheduled = false;
  private nextId = 1;
  private readonly inFlight = new Map<
    number,
    { waiters: Waiter[]; settled: Promise<void>; done: () => void }
  >();
  private failure: Error | undefined;
  private closing: Promise<void> | undefined;

  private constructor(private readonly worker: Worker) {
    worker.on('message', (reply: PipelineReply) => this.settle(reply));
    worker.on('error', (error) => this.fail(new Error(`the audit writer thread failed: ${error}`)));
    worker.on('exit', (code) => this.fail(new Error(`the audit writer thread exited (${code})`)));
  }

  /** Starts the writer thread and waits until it has opened the state file. */
  static async start(workerUrl: URL, statePath: string): Promise<AuditPipeline> {
    const worker = new Worker(workerUrl, { workerData: { statePath } });
    await new Promise<void>((resolve, reject) => {
      const onMessage = (reply: PipelineReply) => {
        worker.off('error', onError);
        if (reply.kind === 'ready') resolve();
        else
          reject(
            new Error(`the audit writer thread could not open the state: ${JSON.stringify(reply)}`),
          );
      };
      const onError = (error: Error) => {
        worker.off('message', onMessage);
        reject(error);
      };
      worker.once('message', onMessage);
      worker.once('error', onError);
    });
    return new AuditPipeline(worker);
  }

  append(event: AuditEventInput): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.closing) return Promise.reject(new Error('the audit writer is closing'));
    return new Promise((resolve, reject) => {
      this.queued.push({ event, waiter: { resolve, reject } });
      // Every request that completed in this turn of the event loop goes in one message.
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.post());
      }
    });
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.post();
      await Promise.allSettled([...this.inFlight.values()].map((batch) => batch.settled));
      if (this.failure) return;
      const exited = new Promise<void>((resolve) => this.worker.once('exit', () => resolve()));
      this.worker.postMessage({ kind: 'close' } satisfies PipelineRequest);
      await exited;
    })();
    return this.closing;
  }

  private post(): void {
    this.scheduled = false;
    const batch = this.queued;
    this.queued = [];
    if (batch.length === 0) return;
    if (this.failure) {
      for (const item of batch) item.waiter.reject(this.failure);
      return;
    }
    const id = this.nextId++;
    let done = () => {};
    const settled = new Promise<void>((resolve) => {
      done = resolve;
    });
    this.inFlight.set(id, { waiters: batch.map((item) => item.waiter), settled, done });
    this.worker.postMessage({
      kind: 'append',
      id,
      events: JSON.stringify(batch.map((item) => item.event)),
    } satisfies PipelineRequest);
  }

  private settle(reply: PipelineReply): void {
    if (reply.kind !== 'committed' && reply.kind !== 'not-committed') return;
    for (const id of reply.ids) {
      const batch = this.inFlight.get(id);
      if (!batch) continue;
      this.inFlight.delete(id);
      for (const waiter of batch.waiters) {
        if (reply.kind === 'committed') waiter.resolve();
        else waiter.reject(new Error(reply.message));
      }
      batch.done();
    }
  }

  private fail(error: Error): void {
    if (this.closing && !this.failure && this.inFlight.size === 0) return; // a normal close
    this.failure ??= error;
    for (const batch of this.inFlight.values()) {
      for (const waiter of batch.waiters) waiter.reject(error);
      batch.done();
    }
    this.inFlight.clear();
    for (const item of this.queued.splice(0)) item.waiter.reject(error);
  }
}
