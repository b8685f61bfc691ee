import { exportLines } from '../../core/audit/export.js';
import type { CommandContext } from '../context.js';
import type { ExportOptions } from './audit.js';
import { withStore } from './shared.js';
import { count } from '../../core/plural.js';

/** Lines are gathered into chunks of about this many characters before each write. */
const CHUNK_CHARS = 64 * 1024;

interface Sink {
  write(chunk: string): unknown;
  on?(event: 'drain' | 'close', listener: () => void): unknown;
}

/**
 * `audit export`: every event, oldest first, streamed to stdout. A write that the stream cannot
 * take at once (it returns false) is followed by a wait for 'drain' before the next row is read,
 * so a slow reader holds the export back instead of letting it pile up in memory.
 */
export async function runExport(context: CommandContext, options: ExportOptions): Promise<void> {
  const sink = context.io.stdout as Sink;
  let events = 0;
  await withStore(context, async (store) => {
    let chunk = '';
    const flush = async () => {
      const accepted = sink.write(chunk);
      chunk = '';
      if (accepted === false && sink.on) await drained(sink);
    };
    for (const line of exportLines(store.db, { format: options.format, since: options.since })) {
      chunk += line;
      events++;
      if (chunk.length >= CHUNK_CHARS) await flush();
    }
    if (chunk !== '') await flush();
  });
  if (options.format === 'csv') events--;
  context.output.info(`exported ${count(events, 'event')}`);
}

/** Resolves on 'drain'; a reader that went away ends the export rather than hanging it. */
function drained(sink: Sink): Promise<void> {
  const stream = sink as unknown as NodeJS.EventEmitter;
  return new Promise((resolve) => {
    const done = () => {
      stream.off('drain', done);
      stream.off('close', done);
      resolve();
    };
    stream.on('drain', done);
    stream.on('close', done);
  });
}
