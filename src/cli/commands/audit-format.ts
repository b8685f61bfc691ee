import type { AuditOutcome } from '../../core/audit/receipts.js';
import type { Cell, Output } from '../output/output.js';

/** Shared pieces of the audit renderers (query, trace). */

/** A duration for people: 850 µs, 2.9 ms, 1.24 s. */
export function formatDuration(us: number): string {
  if (us < 1000) return `${Math.round(us)} µs`;
  if (us < 1_000_000) {
    const ms = us / 1000;
    return `${ms < 10 ? ms.toFixed(2) : ms < 100 ? ms.toFixed(1) : ms.toFixed(0)} ms`;
  }
  const s = us / 1_000_000;
  return `${s < 10 ? s.toFixed(2) : s.toFixed(1)} s`;
}

/** An ISO time as a terminal shows it: UTC, a space instead of T, milliseconds kept, no Z. */
export function shortTime(iso: string): string {
  return iso.replace('T', ' ').replace(/Z$/, '');
}

export function outcomeCell(outcome: AuditOutcome): Cell {
  const style = ({ success: 'green', denied: 'yellow', error: 'red', timeout: 'red' } as const)[
    outcome
  ];
  return { text: outcome, style };
}

/**
 * The peers a federated query could not ask, as warnings on stderr. Each message names its node
 * already (core/audit/federated.ts), so it is printed as it is.
 */
export function warnProblems(
  output: Output,
  problems: ReadonlyArray<{ nodeId: string; code: string; message: string }>,
  /** What the results lack without that node: "events", "side of the call". */
  missing: string,
): void {
  for (const problem of problems) {
    output.warn(
      `${problem.message} (${problem.code}): ${problem.nodeId}'s ${missing} are not in these results`,
    );
  }
}
