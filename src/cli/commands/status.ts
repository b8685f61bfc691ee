import type { Command } from 'commander';
import type { NodeIdentity } from '../../core/identity/node-identity.js';
import { NotFoundError } from '../../core/errors.js';
import { action } from '../action.js';
import type { CommandContext } from '../context.js';
import { withExamples } from '../help-text.js';
import type { Cell, CliIo } from '../output/output.js';

const DAY_MS = 24 * 60 * 60 * 1000;

/** The JSON shape of `status` and `init` (docs/json-output.md). */
export interface IdentityReport {
  nodeId: string;
  trustDomain: string;
  spiffeId: string;
  endpoint: string | null;
  fingerprint: string;
  notBefore: string;
  notAfter: string;
  expiresInDays: number;
  expired: boolean;
  keyPath: string;
  statePath: string;
}

export function registerStatus(program: Command, io: CliIo): void {
  const command = program
    .command('status')
    .description("show this node's identity and certificate expiry")
    .action(
      action<object>(io, async (context) => {
        const { openState } = await import('../../core/state/database.js');
        const { loadIdentity } = await import('../../core/state/identity-repository.js');
        const store = openState(context.statePath, { create: false });
        let identity: NodeIdentity | undefined;
        try {
          identity = store.read(loadIdentity);
        } finally {
          store.close();
        }
        if (!identity) {
          throw new NotFoundError('NO_IDENTITY', `no node identity in ${context.statePath}`, {
            hint: 'run `sark-fed init` first',
          });
        }
        renderIdentity(context, identity);
      }),
    );
  withExamples(command, [
    ['Show the identity', 'sark-fed status'],
    [
      'Days until the certificate expires, for a monitoring script',
      'sark-fed status --json | jq .expiresInDays',
    ],
  ]);
}

export function identityReport(
  identity: NodeIdentity,
  statePath: string,
  now: Date,
): IdentityReport {
  const remaining = new Date(identity.notAfter).getTime() - now.getTime();
  return {
    nodeId: identity.nodeId,
    trustDomain: identity.trustDomain,
    spiffeId: identity.spiffeId,
    endpoint: identity.endpoint,
    fingerprint: identity.fingerprint,
    notBefore: identity.notBefore,
    notAfter: identity.notAfter,
    expiresInDays: Math.floor(remaining / DAY_MS),
    expired: remaining <= 0,
    keyPath: identity.keyPath,
    statePath,
  };
}

export function renderIdentity(context: CommandContext, identity: NodeIdentity): void {
  const report = identityReport(identity, context.statePath, context.now());
  if (context.output.json) {
    context.output.writeJson(report);
    return;
  }
  const expiry: Cell = report.expired
    ? { text: `${report.notAfter} (expired)`, style: 'red' }
    : {
        text: `${report.notAfter} (in ${report.expiresInDays} days)`,
        style: report.expiresInDays < 14 ? 'yellow' : 'green',
      };
  context.output.fields([
    ['Node', report.nodeId],
    ['Trust domain', report.trustDomain],
    ['SPIFFE ID', report.spiffeId],
    ['Endpoint', report.endpoint ?? '-'],
    ['Fingerprint', report.fingerprint],
    ['Expires', expiry],
    ['Key', report.keyPath],
    ['State', report.statePath],
  ]);
  if (report.expired) context.output.warn('the node certificate has expired; peers will refuse it');
}
