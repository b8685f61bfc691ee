import { describe, expect, it } from 'vitest';
import { COUNT_UP_TO, truncationNote } from '../../../src/cli/commands/audit-query.js';

/**
 * The note `audit query` prints on stderr when more events matched than it shows: one wording
 * whatever is known of the number (e2e covers the local count and --federated; this the cap).
 */
describe('truncationNote', () => {
  const tail = 'matching events; raise --limit or narrow the filters';

  it('gives the count when it is known, a floor in the same words when it is not', () => {
    expect(truncationNote({ federated: false, count: 5, limit: 5, total: 30 })).toBe(
      `showing the newest 5 of 30 ${tail}`,
    );
    // More than COUNT_UP_TO matched: counting stopped there.
    expect(truncationNote({ federated: false, count: 100, limit: 100, total: null })).toBe(
      `showing the newest 100 of more than ${COUNT_UP_TO} ${tail}`,
    );
    // --federated: each node sends one event past the limit, so the limit is all that is known.
    expect(truncationNote({ federated: true, count: 2, limit: 2, total: null })).toBe(
      `showing the newest 2 of more than 2 ${tail}`,
    );
  });
});
