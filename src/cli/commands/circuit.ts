import { Argument, type Command } from 'commander';
import type { CircuitRecord } from '../../core/routing/circuit-breaker.js';
import { action } from '../action.js';
import { completeWith, KNOWN_NODES } from '../completion/values.js';
import { withExamples } from '../help-text.js';
import type { Cell, CliIo } from '../output/output.js';
import { withStore } from './shared.js';

export function registerCircuit(program: Command, io: CliIo): void {
  const circuit = program
    .command('circuit')
    .description('circuit breakers of the nodes this node calls (shared by every process)');

  const list = circuit
    .command('list')
    .description(
      'the circuit of every trusted peer and of any node that failed: state, failures, retry time',
    )
    .action(
      action<object>(io, async (context) => {
        const { CircuitBreakers, listCircuits } =
          await import('../../core/routing/circuit-breaker.js');
        const { breakerConfig } = await import('../../core/routing/session.js');
        const { listPeers } = await import('../../core/state/trust-repository.js');
        const reports = await withStore(context, (store) => {
          const breakers = new CircuitBreakers(store, breakerConfig(context.io.env), context.now);
          const { records, trusted } = store.read((db) => ({
            records: listCircuits(db),
            trusted: listPeers(db, 'trusted'),
          }));
          // A trusted peer that never failed has no row: it is listed, closed, all the same.
          const byNode = new Map<
            string,
            Omit<CircuitRecord, 'updatedAt'> & { updatedAt: string | null }
          >(records.map((record) => [record.nodeId, record]));
          for (const peer of trusted) {
            if (byNode.has(peer.nodeId)) continue;
            byNode.set(peer.nodeId, {
              nodeId: peer.nodeId,
              state: 'closed',
              consecutiveFailures: 0,
              openedAt: null,
              trialStartedAt: null,
              lastFailure: null,
              updatedAt: null,
            });
          }
          return [...byNode.values()]
            .sort((a, b) => a.nodeId.localeCompare(b.nodeId))
            .map((record) =>
              circuitReport(
                record,
                record.updatedAt === null ? null : breakers.retryAt(record as CircuitRecord),
              ),
            );
        });
        if (context.output.json) {
          context.output.writeJson(reports);
          return;
        }
        if (reports.length === 0) context.output.info('no trusted peers, and no circuits');
        context.output.table(
          ['node', 'state', 'failures', 'opened at', 'retry at', 'last failure'],
          reports.map((report) => [
            report.nodeId,
            stateCell(
              report.state,
              report.retryAt !== null && Date.parse(report.retryAt) <= context.now().getTime(),
            ),
            String(report.consecutiveFailures),
            report.openedAt ?? '-',
            report.retryAt ?? '-',
            report.lastFailure ?? '-',
          ]),
        );
      }),
    );
  withExamples(list, [
    ['Which peers are cut off, and until when', 'sark-fed circuit list'],
    [
      'Open circuits, for a script',
      'sark-fed circuit list --json | jq -r \'.[] | select(.state != "closed") | .nodeId\'',
    ],
  ]);

  const reset = circuit
    .command('reset')
    .description('close a circuit now (the node is known to be back)')
    .addArgument(completeWith(new Argument('<node>', 'node ID'), KNOWN_NODES))
    .action(
      action<object>(io, async (context, _options, [nodeId]) => {
        const { deleteCircuit, findCircuit } =
          await import('../../core/routing/circuit-breaker.js');
        const { findKnownNode } = await import('../../core/discovery/node-view.js');
        const { loadIdentity } = await import('../../core/state/identity-repository.js');
        const { unknownNodeError } = await import('../../core/identity/spiffe.js');
        const previous = await withStore(context, (store) =>
          store.write((db) => {
            const record = findCircuit(db, nodeId as string);
            if (record) {
              deleteCircuit(db, nodeId as string);
              return record.state;
            }
            const known =
              loadIdentity(db)?.nodeId === nodeId ||
              findKnownNode(db, nodeId as string, context.now()) !== undefined;
            if (!known) {
              throw unknownNodeError(
                nodeId as string,
                'see `sark-fed circuit list` and `sark-fed nodes list`',
              );
            }
            return null;
          }),
        );
        if (previous === null || previous === 'closed') {
          context.output.success(`the circuit to ${nodeId} is closed`);
        } else {
          context.output.success(`closed the circuit to ${nodeId} (it was ${display(previous)})`);
        }
        if (context.output.json) {
          context.output.writeJson({
            nodeId,
            state: 'closed',
            previousState: previous ?? 'closed',
          });
        }
      }),
    );
  withExamples(reset, [['Let calls to node-b through again', 'sark-fed circuit reset node-b']]);
}

/** The JSON shape of a circuit in `circuit list` (docs/json-output.md). */
function circuitReport(
  record: Omit<CircuitRecord, 'updatedAt'> & { updatedAt: string | null },
  retryAt: string | null,
) {
  return {
    nodeId: record.nodeId,
    state: record.state,
    consecutiveFailures: record.consecutiveFailures,
    openedAt: record.openedAt,
    retryAt,
    trialStartedAt: record.trialStartedAt,
    lastFailure: record.lastFailure,
    updatedAt: record.updatedAt,
  };
}

function display(state: string): string {
  return state.replace('_', '-');
}

/**
 * The state, and what its retry time having passed means: an open circuit lets the next call
 * through as its trial; a half-open one's trial claim has lapsed (its process died), and the next
 * call takes it over. Either way calls are no longer refused, which "open" alone would deny.
 */
function stateCell(state: CircuitRecord['state'], retryDue: boolean): Cell {
  if (retryDue && state === 'open') return { text: 'open (trial due)', style: 'yellow' };
  if (retryDue && state === 'half_open')
    return { text: 'half-open (trial lapsed)', style: 'yellow' };
  const style = ({ closed: 'green', open: 'red', half_open: 'yellow' } as const)[state];
  return { text: display(state), style };
}
