import { CANDIDATES_COUNTED_UP_TO, resolveCorrelationId } from '../../core/audit/trace.js';
import { NotFoundError, UsageError } from '../../core/errors.js';
import type { StateStore } from '../../core/state/database.js';

/**
 * The full correlation ID for what an operator typed: the whole ID in any case, or a prefix
 * that starts only one ID of this trail, as the terminal tables show them (`audit trace` and
 * `audit query --correlation-id` alike). A prefix too short or that starts several IDs is a
 * usage error (exit 2). An ID this trail does not hold is not found (exit 4) for a trace; for a
 * query it is kept as given, and matches nothing here (an empty result is no error).
 */
export function resolveCorrelationArgument(
  store: StateStore,
  typed: string,
  use: 'trace' | 'query',
): string {
  // Correlation IDs are UUIDs, stored in lower case (every node lower-cases what it is given).
  const given = typed.toLowerCase();
  const found = store.read((db) => resolveCorrelationId(db, given));
  switch (found.status) {
    case 'found':
      return found.correlationId;
    case 'none':
      if (use === 'query') return given;
      throw new NotFoundError(
        'NO_SUCH_CORRELATION_ID',
        `no audit event of this node has the correlation ID ${given}`,
        {
          hint: 'find calls with `sark-fed audit query`; a call this node took no part in is only in the trails of the nodes that did',
        },
      );
    case 'too-short':
      // Not looked up: saying "not found" would deny IDs the trail holds.
      throw new UsageError(
        'CORRELATION_ID_TOO_SHORT',
        `${given === '' ? 'the correlation ID is empty' : `the correlation ID prefix ${given} is too short`}: give at least ${found.minimum} characters, or the whole ID`,
        {
          hint: '`sark-fed audit query` lists correlation IDs (whole in a pipe or with --json)',
        },
      );
    case 'ambiguous': {
      const { candidates, total } = found;
      const more =
        total === null
          ? ` and over ${CANDIDATES_COUNTED_UP_TO - candidates.length} more`
          : total > candidates.length
            ? ` and ${total - candidates.length} more`
            : '';
      throw new UsageError(
        'AMBIGUOUS_CORRELATION_ID',
        `${given} is the start of ${total === null ? `over ${CANDIDATES_COUNTED_UP_TO}` : total} correlation IDs: ${candidates.join(', ')}${more}`,
        { hint: 'give more of the correlation ID' },
      );
    }
  }
}
