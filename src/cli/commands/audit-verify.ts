import { OperationError } from '../../core/errors.js';
import { ReceiptSigners, verifyChain, type ChainVerification } from '../../core/audit/verify.js';
import type { CommandContext } from '../context.js';
import { withStore } from './shared.js';
import { count } from '../../core/plural.js';

/** Problems listed on a terminal or in a pipe; --json holds up to 100, and all are counted. */
const SHOWN_PROBLEMS = 20;

/** `audit verify`: the whole chain and every receipt; exit 1 naming the first broken event. */
export async function runVerify(context: CommandContext): Promise<void> {
  const spinner = await context.output.spinner('verifying the audit trail');
  let result: ChainVerification;
  try {
    result = await withStore(context, (store) =>
      store.read((db) => verifyChain(db, ReceiptSigners.load(db))),
    );
  } finally {
    spinner.stop();
  }

  if (context.output.json) {
    context.output.writeJson(result);
  } else {
    render(context, result);
  }
  for (const { nodeId, events, reason } of result.unknownSigners) {
    context.output.warn(
      reason === 'no-certificate'
        ? `${count(events, 'receipt')} signed by ${nodeId} not checked: no certificate of ${nodeId} is known here`
        : `${count(events, 'receipt')} signed by ${nodeId} not checked: signed before the certificate held for ${nodeId} was issued (it renewed its key since)`,
    );
  }
  const first = result.problems[0];
  if (first) {
    const more =
      result.problemCount > 1 ? ` (${count(result.problemCount - 1, 'more problem')})` : '';
    throw new OperationError(
      'AUDIT_CHAIN_BROKEN',
      `the audit trail is broken at seq ${first.seq} (event ${first.eventId}, correlation ID ${first.correlationId}): ${first.message}${more}`,
      {
        hint: 'the trail was altered outside sark-fed: keep a copy of the state file as evidence',
      },
    );
  }
  context.output.success(
    `verified ${count(result.events, 'event')} and ${count(result.receipts.verified, 'receipt')}`,
  );
}

function render(context: CommandContext, result: ChainVerification): void {
  const { output } = context;
  const receipts = result.receipts;
  output.fields([
    [
      'events',
      result.events === 0
        ? '0'
        : `${result.events} (seq ${result.firstSeq ?? '-'} to ${result.lastSeq ?? '-'})`,
    ],
    [
      'receipts',
      `${receipts.verified} verified, ${receipts.invalid} invalid, ${receipts.unknownSigner} unknown signer, ${count(receipts.none, 'event')} without`,
    ],
    ['head hash', result.headHash],
    [
      'result',
      result.ok
        ? { text: 'ok', style: 'green' }
        : { text: count(result.problemCount, 'problem'), style: 'red' },
    ],
  ]);
  if (result.ok) return;
  const shown = result.problems.slice(0, SHOWN_PROBLEMS);
  if (!output.stdoutIsTTY) {
    // In a pipe every line stays label<TAB>values, the problems included.
    for (const problem of shown) {
      const fields = [problem.seq, problem.eventId, problem.correlationId, problem.code];
      output.line(['problem', ...fields, problem.message].join('\t'));
    }
  } else {
    output.line();
    output.table(
      ['seq', 'event', 'correlation', 'problem', 'detail'],
      shown.map((problem) => [
        String(problem.seq),
        problem.eventId,
        problem.correlationId,
        { text: problem.code, style: 'red' },
        problem.message,
      ]),
    );
  }
  if (result.problemCount > SHOWN_PROBLEMS) {
    output.info(`${count(result.problemCount - SHOWN_PROBLEMS, 'more problem')}: see --json`);
  }
}
