import type { Command } from 'commander';
import type { NodeIdentity } from '../../core/identity/node-identity.js';
import type { StateStore } from '../../core/state/database.js';
import type { DaemonStatus } from '../../core/state/daemon-claim.js';
import type { RevocationListReport } from '../../core/trust/crl-report.js';
import type { TrustCounts } from '../../core/state/trust-repository.js';
import { NotFoundError, isSarkError, messageOf } from '../../core/errors.js';
import { count } from '../../core/plural.js';
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

interface StatusReport extends IdentityReport {
  counts: TrustCounts;
  /** Whether `sark-fed serve` runs on this state file. */
  daemon?: DaemonStatus;
  /** The CRL held that is due first: once passed, its CA's certificates are refused. */
  crlDueFirst?: RevocationListReport | null;
  /**
   * Why the node key cannot be used as it is now (gone, readable by others, not the key of the
   * certificate...), or null: `init` checked it, but the file may have changed since.
   */
  keyProblem: { code: string; message: string } | null;
}

export function registerStatus(program: Command, io: CliIo): void {
  const command = program
    .command('status')
    .description("show this node's identity and certificate expiry")
    .action(
      action<object>(io, async (context) => {
        const { openState } = await import('../../core/state/database.js');
        const { loadIdentity } = await import('../../core/state/identity-repository.js');
        const { countTrust } = await import('../../core/state/trust-repository.js');
        const store = openState(context.statePath, { create: false });
        let identity: NodeIdentity | undefined;
        let counts: TrustCounts;
        let extras: StatusExtras;
        try {
          identity = store.read(loadIdentity);
          counts = store.read(countTrust);
          extras = await readStatusExtras(store, context);
        } finally {
          store.close();
        }
        if (!identity) {
          throw new NotFoundError('NO_IDENTITY', `no node identity in ${context.statePath}`, {
            hint: 'run `sark-fed init` first',
          });
        }
        const { crlDueFirst } = extras;
        if (crlDueFirst?.expired) {
          context.output.warn(
            `the CRL of ${crlDueFirst.issuer} passed its next update (${crlDueFirst.nextUpdate}): every certificate of that CA is refused until a fresh one is imported (sark-fed trust crl import)`,
          );
        } else if (crlDueFirst && (crlDueFirst.nextUpdateInDays ?? 0) < 7) {
          context.output.warn(
            `the CRL of ${crlDueFirst.issuer} is due in ${count(crlDueFirst.nextUpdateInDays ?? 0, 'day')} (${crlDueFirst.nextUpdate}): import a fresh one before, or every certificate of that CA is refused`,
          );
        }
        renderStatus(context, identity, counts, await keyProblemOf(identity), extras);
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

export type StatusExtras = Required<Pick<StatusReport, 'daemon' | 'crlDueFirst'>>;

/** What status (and init) report beside the identity: the daemon, and the CRL due first. */
export async function readStatusExtras(
  store: StateStore,
  context: Pick<CommandContext, 'statePath' | 'now'>,
): Promise<StatusExtras> {
  const { daemonStatus } = await import('../../core/state/daemon-claim.js');
  const { listRevocationLists } = await import('../../core/state/trust-repository.js');
  const { revocationListReport } = await import('../../core/trust/crl-report.js');
  return store.read((db) => {
    const due = listRevocationLists(db)
      .map((list) => revocationListReport(list, context.now()))
      .filter((report) => report.nextUpdate !== null)
      .sort((a, b) => Date.parse(a.nextUpdate ?? '') - Date.parse(b.nextUpdate ?? ''));
    return { daemon: daemonStatus(db, context.statePath), crlDueFirst: due[0] ?? null };
  });
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

/** Prints what `status` and `init` print: the identity and how much trust the state holds. */
export function renderStatus(
  context: CommandContext,
  identity: NodeIdentity,
  counts: TrustCounts,
  keyProblem: StatusReport['keyProblem'] = null,
  more: Partial<StatusExtras> = {},
): void {
  const { daemon } = more;
  const report: StatusReport = {
    ...identityReport(identity, context.statePath, context.now()),
    counts,
    keyProblem,
    ...more,
  };
  if (keyProblem) {
    context.output.warn(
      `the node key cannot be used: ${keyProblem.message}; serve and calls to peers will fail`,
    );
  }
  if (context.output.json) {
    context.output.writeJson(report);
    return;
  }
  renderIdentity(context, identity, [
    ['Anchors', anchorsCell(counts, more.crlDueFirst ?? null)],
    [
      'Peers',
      `${counts.peers.trusted} trusted, ${counts.peers.pending} pending, ` +
        `${counts.peers.untrusted} untrusted, ${counts.peers.revoked} revoked`,
    ],
    ...(daemon ? [['Daemon', daemonCell(daemon)] as const] : []),
  ]);
}

function anchorsCell(counts: TrustCounts, due: RevocationListReport | null): Cell {
  const text = `${counts.anchors} (${count(counts.revocationLists, 'CRL')}`;
  if (due === null) return `${text})`;
  if (due.expired) return { text: `${text}, one past its next update)`, style: 'red' };
  const days = due.nextUpdateInDays ?? 0;
  return {
    text: `${text}, the next due in ${count(days, 'day')})`,
    style: days < 7 ? 'yellow' : 'green',
  };
}

function daemonCell(daemon: DaemonStatus): Cell {
  switch (daemon.state) {
    case 'running':
      return {
        text: `running (pid ${daemon.pid}, since ${daemon.since}${daemon.listening ? `, at ${daemon.listening}` : ''})`,
        style: 'green',
      };
    case 'unknown':
      return {
        text: `claimed by pid ${daemon.pid} on ${daemon.host} since ${daemon.since}; cannot be checked from here (another machine or PID namespace)`,
        style: 'yellow',
      };
    case 'stopped':
      return daemon.unclean
        ? {
            text: `not running (pid ${daemon.pid}, started ${daemon.since}, ended without stopping: killed or crashed)`,
            style: 'yellow',
          }
        : 'not running';
  }
}

function renderIdentity(
  context: CommandContext,
  identity: NodeIdentity,
  extraFields: readonly (readonly [string, Cell])[] = [],
): void {
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
    ...extraFields,
  ]);
  if (report.expired) context.output.warn('the node certificate has expired; peers will refuse it');
}

/** The node key read as `serve` and every call read it, and checked against the certificate. */
async function keyProblemOf(identity: NodeIdentity): Promise<StatusReport['keyProblem']> {
  const { loadNodeKey } = await import('../../core/identity/keys.js');
  try {
    loadNodeKey(identity);
    return null;
  } catch (error) {
    return isSarkError(error)
      ? { code: error.code, message: error.message }
      : { code: 'KEY_UNREADABLE', message: messageOf(error) };
  }
}
