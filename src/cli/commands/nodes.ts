import { Argument, type Command } from 'commander';
import type { KnownNode } from '../../core/discovery/node-view.js';
import type { NodeHealth } from '../../core/state/discovery-repository.js';
import { action } from '../action.js';
import { completeWith, KNOWN_NODES } from '../completion/values.js';
import type { CommandContext } from '../context.js';
import { withExamples } from '../help-text.js';
import { durationOption } from '../options.js';
import type { Cell, CliIo } from '../output/output.js';
import { levelCell, shortOnTty, withNode, withStore } from './shared.js';
import { count } from '../../core/plural.js';

interface AddOptions {
  endpoint: string;
  trustDomain?: string;
  fingerprint?: string;
}

export function registerNodes(program: Command, io: CliIo): void {
  const nodes = program
    .command('nodes')
    .description('nodes this node knows of: discovered, added by hand, or peers');

  const list = nodes
    .command('list')
    .description('every known node with how it was found, its trust level and last health')
    .action(
      action<object>(io, async (context) => {
        const { listKnownNodes } = await import('../../core/discovery/node-view.js');
        const known = await withStore(context, (store) =>
          store.read((db) => listKnownNodes(db, context.now())),
        );
        if (context.output.json) {
          context.output.writeJson(known.map(nodeReport));
          return;
        }
        if (known.length === 0) {
          context.output.info('no nodes yet; find some with `sark-fed discover`');
        }
        context.output.table(
          [
            'node',
            'trust domain',
            'endpoint',
            'fingerprint',
            'via',
            'trust',
            'health',
            'last seen',
          ],
          known.map((node) => [
            node.nodeId,
            node.trustDomain ?? '-',
            node.endpoint ?? '-',
            shortOnTty(context, node.fingerprint),
            node.via.join(',') || '-',
            levelCell(node.trust),
            healthCell(node.health),
            node.lastSeenAt === null
              ? '-'
              : node.stale
                ? { text: `${node.lastSeenAt} (stale)`, style: 'dim' }
                : node.lastSeenAt,
          ]),
        );
      }),
    );
  withExamples(list, [
    ['All known nodes', 'sark-fed nodes list'],
    [
      'Endpoints of the trusted ones, for a script',
      'sark-fed nodes list --json | jq -r \'.[] | select(.trust == "trusted") | .endpoint\'',
    ],
  ]);

  const show = nodes
    .command('show')
    .description('one node: trust, every sighting, last health check')
    .addArgument(completeWith(new Argument('<node>', 'node ID'), KNOWN_NODES))
    .action(
      action<object>(io, async (context, _options, [nodeId]) => {
        const node = await requireKnownNode(context, nodeId as string);
        if (context.output.json) {
          context.output.writeJson(nodeReport(node));
          return;
        }
        context.output.fields([
          ['Node', node.nodeId],
          ['Trust domain', node.trustDomain ?? '-'],
          ['Endpoint', node.endpoint ?? '-'],
          ['Fingerprint', node.fingerprint ?? '-'],
          ['Trust', levelCell(node.trust)],
          ['Health', healthCell(node.health)],
          ['Latency', node.health?.latencyMs == null ? '-' : `${node.health.latencyMs} ms`],
          ['Checked', node.health?.checkedAt ?? '-'],
          // One line per sighting, by its source: `manual` (recorded with `nodes add`) and
          // `file` (a nodes file or FEDERATION_NODES) are both the manual method's.
          ...node.sightings.map(
            (sighting) =>
              [
                `Seen via ${sighting.source}`,
                `${sighting.endpoint} at ${sighting.seenAt}` +
                  (sighting.expiresAt ? `, cached until ${sighting.expiresAt}` : '') +
                  (sighting.source === 'manual' ? ', added by hand' : '') +
                  (sighting.source === 'file' ? ', from a nodes file' : ''),
              ] as const,
          ),
        ]);
      }),
    );
  withExamples(show, [
    [
      'Where a node was seen, by which method, and its last health check',
      'sark-fed nodes show node-b',
    ],
  ]);

  const add = nodes
    .command('add')
    .description('record a node by hand (a manual sighting; it stays until `nodes remove`)')
    .argument('<node>', 'node ID')
    .requiredOption('--endpoint <url>', 'where it answers, https://host:port')
    .option('--trust-domain <domain>', 'its trust domain, when known')
    .option('--fingerprint <sha256>', 'the certificate fingerprint it is expected to present')
    .action(
      action<AddOptions>(io, async (context, options, [nodeId]) => {
        const { assertNodeId, assertTrustDomain } = await import('../../core/identity/spiffe.js');
        const { normalizeEndpoint } = await import('../../core/identity/node-identity.js');
        const { normalizeFingerprint } = await import('../../core/identity/fingerprint.js');
        const { recordSightings } = await import('../../core/state/discovery-repository.js');
        const { findPeer, savePeer } = await import('../../core/state/trust-repository.js');
        const { loadIdentity } = await import('../../core/state/identity-repository.js');
        const { UsageError, TrustError } = await import('../../core/errors.js');
        assertNodeId(nodeId as string);
        if (options.trustDomain !== undefined) assertTrustDomain(options.trustDomain);
        const endpoint = normalizeEndpoint(options.endpoint);
        const fingerprint =
          options.fingerprint === undefined ? null : normalizeFingerprint(options.fingerprint);
        const outcome = await withStore(
          context,
          (store) =>
            store.write((db) => {
              if (loadIdentity(db)?.nodeId === nodeId) {
                throw new UsageError('SELF', `${nodeId} is this node itself`, {
                  hint: 'add the other nodes of the federation',
                });
              }
              const recorded = recordSightings(
                db,
                [
                  {
                    nodeId: nodeId as string,
                    endpoint,
                    trustDomain: options.trustDomain ?? null,
                    fingerprint,
                    source: 'manual',
                    ttlSeconds: 0,
                  },
                ],
                context.now(),
              );
              // The operator says where the node is: a peer's recorded endpoint (which discovery
              // never changes for a trusted peer) follows, whatever its trust level.
              const peer = findPeer(db, nodeId as string);
              if (recorded.conflicts.length === 0 && peer && peer.endpoint !== endpoint) {
                savePeer(db, { ...peer, endpoint, updatedAt: context.now().toISOString() });
              }
              return recorded;
            }),
          true,
        );
        const conflict = outcome.conflicts[0];
        if (conflict) {
          throw new TrustError(
            'TRUST_DOMAIN_CONFLICT',
            `${conflict.nodeId} is known here as a node of ${conflict.known}, not ${conflict.seen}`,
            { hint: 'check the trust domain; a node ID belongs to one trust domain' },
          );
        }
        context.output.success(`recorded ${nodeId} at ${endpoint}`);
        if (context.output.json) {
          const { findKnownNode } = await import('../../core/discovery/node-view.js');
          const node = await withStore(context, (store) =>
            store.read((db) => findKnownNode(db, nodeId as string, context.now())),
          );
          if (node) context.output.writeJson(nodeReport(node));
        }
      }),
    );
  withExamples(add, [
    [
      'Add a node of another organization by hand',
      'sark-fed nodes add node-b --endpoint https://10.0.0.12:8443 --trust-domain org-b.example',
    ],
  ]);

  const remove = nodes
    .command('remove')
    .description("forget a node's sightings and health; a trust decision is kept")
    .addArgument(completeWith(new Argument('<node>', 'node ID'), KNOWN_NODES))
    .action(
      action<object>(io, async (context, _options, [nodeId]) => {
        const { deleteSightings, deleteHealth } =
          await import('../../core/state/discovery-repository.js');
        const { findPeer, deletePeer } = await import('../../core/state/trust-repository.js');
        const { unknownNodeError } = await import('../../core/identity/spiffe.js');
        const { loadIdentity } = await import('../../core/state/identity-repository.js');
        const { UsageError } = await import('../../core/errors.js');
        const result = await withStore(context, (store) =>
          store.write((db) => {
            const peer = findPeer(db, nodeId as string);
            const sightings = deleteSightings(db, nodeId as string);
            const health = deleteHealth(db, nodeId as string);
            // An untrusted peer row is only what discovery recorded; any decision stays, the
            // peer's own revocation of this node (untrusted with revokedAt) included.
            const peerRemoved =
              peer?.trustLevel === 'untrusted' &&
              peer.revokedAt === null &&
              deletePeer(db, peer.nodeId);
            if (!peer && sightings === 0 && !health) {
              // This node is not in its own inventory: say so rather than "not known here".
              if (loadIdentity(db)?.nodeId === nodeId) {
                throw new UsageError('SELF', `${nodeId} is this node itself`, {
                  hint: 'nodes lists the other nodes of the federation; see `sark-fed nodes list`',
                });
              }
              throw unknownNodeError(nodeId as string, 'see `sark-fed nodes list`');
            }
            return { keptTrust: peer !== undefined && !peerRemoved ? peer.trustLevel : null };
          }),
        );
        context.output.success(`removed ${nodeId}`);
        if (result.keptTrust)
          context.output.info(keptTrustNote(nodeId as string, result.keptTrust));
        if (context.output.json) {
          context.output.writeJson({ nodeId, removed: true, trustKept: result.keptTrust });
        }
      }),
    );
  withExamples(remove, [
    [
      'Forget a node that left (its trust decision, if any, is kept)',
      'sark-fed nodes remove node-c',
    ],
  ]);

  const health = nodes
    .command('health')
    .description("ask nodes' health endpoints concurrently and record status and latency")
    .addArgument(
      completeWith(
        new Argument('[node...]', 'node IDs (default: every known node with an endpoint)'),
        KNOWN_NODES,
      ),
    )
    .addOption(durationOption('--timeout <duration>', 'how long to wait for each node', '5s'))
    .action(
      action<{ timeout: number }>(io, async (context, options, nodeIds) => {
        const { listKnownNodes } = await import('../../core/discovery/node-view.js');
        const { checkHealthOfNodes } = await import('../../core/discovery/health.js');
        const { saveHealth } = await import('../../core/state/discovery-repository.js');
        const { trustMaterial } = await import('../../core/trust/trust-material.js');
        const { UnavailableError, UsageError } = await import('../../core/errors.js');
        const { unknownNodeError } = await import('../../core/identity/spiffe.js');
        const checked = await withNode(context, async ({ store, identity, privateKey }) => {
          const known = store.read((db) => listKnownNodes(db, context.now()));
          const byId = new Map(known.map((node) => [node.nodeId, node]));
          for (const nodeId of nodeIds) {
            const node = byId.get(nodeId);
            if (!node) {
              throw unknownNodeError(nodeId as string, 'see `sark-fed nodes list`');
            }
            if (!node.endpoint) {
              throw new UsageError('NO_ENDPOINT', `no endpoint is recorded for ${nodeId}`, {
                hint: `record one: sark-fed nodes add ${nodeId} --endpoint https://host:port`,
              });
            }
          }
          const targets = (
            nodeIds.length > 0
              ? [...new Set(nodeIds)].map((id) => byId.get(id) as KnownNode)
              : known
          )
            .filter((node) => node.endpoint !== null)
            .map((node) => ({
              nodeId: node.nodeId,
              endpoint: node.endpoint as string,
              pinnedFingerprint: node.trust === 'trusted' ? node.fingerprint : null,
            }));
          const spinner = await context.output.spinner(`checking ${count(targets.length, 'node')}`);
          const results = await checkHealthOfNodes(targets, {
            identity,
            privateKey,
            material: trustMaterial(store),
            timeoutMs: options.timeout,
            now: context.now,
          });
          spinner.stop();
          store.write((db) => {
            for (const result of results) saveHealth(db, result);
          });
          return results;
        });
        if (context.output.json) context.output.writeJson(checked);
        else {
          if (checked.length === 0) context.output.info('no node with an endpoint to check');
          context.output.table(
            ['node', 'health', 'latency', 'detail'],
            checked.map((item) => [
              item.nodeId,
              healthCell(item),
              item.latencyMs === null ? '-' : `${item.latencyMs} ms`,
              item.detail ?? '',
            ]),
          );
        }
        const offline = checked.filter((item) => item.status === 'offline');
        if (offline.length > 0) {
          throw new UnavailableError(
            'NODES_OFFLINE',
            `${offline.length} of ${count(checked.length, 'node')} did not answer: ${offline.map((item) => item.nodeId).join(', ')}`,
            { hint: 'check that they run `sark-fed serve` and that their endpoints are right' },
          );
        }
      }),
    );
  withExamples(health, [
    ['Check every known node', 'sark-fed nodes health'],
    [
      'Check two nodes, waiting at most 2 s each',
      'sark-fed nodes health node-b node-c --timeout 2s',
    ],
  ]);
}

async function requireKnownNode(context: CommandContext, nodeId: string): Promise<KnownNode> {
  const { findKnownNode } = await import('../../core/discovery/node-view.js');
  const { unknownNodeError } = await import('../../core/identity/spiffe.js');
  const node = await withStore(context, (store) =>
    store.read((db) => findKnownNode(db, nodeId, context.now())),
  );
  if (!node) {
    throw unknownNodeError(
      nodeId as string,
      'see `sark-fed nodes list`, or find nodes with `sark-fed discover`',
    );
  }
  return node;
}

function healthCell(health: NodeHealth | null): Cell {
  if (!health) return { text: 'unknown', style: 'dim' };
  const style = ({ online: 'green', degraded: 'yellow', offline: 'red' } as const)[health.status];
  return { text: health.status, style };
}

/** The JSON shape of a node in `nodes list|show|add` (docs/json-output.md). */
export function nodeReport(node: KnownNode) {
  return {
    nodeId: node.nodeId,
    trustDomain: node.trustDomain,
    endpoint: node.endpoint,
    fingerprint: node.fingerprint,
    via: node.via,
    trust: node.trust,
    health: node.health
      ? {
          status: node.health.status,
          latencyMs: node.health.latencyMs,
          detail: node.health.detail,
          checkedAt: node.health.checkedAt,
        }
      : null,
    lastSeenAt: node.lastSeenAt,
    stale: node.stale,
    sightings: node.sightings.map((sighting) => ({
      source: sighting.source,
      endpoint: sighting.endpoint,
      trustDomain: sighting.trustDomain,
      fingerprint: sighting.fingerprint,
      seenAt: sighting.seenAt,
      expiresAt: sighting.expiresAt,
    })),
  };
}

/** What stays of a removed node, and the command that would change it. */
function keptTrustNote(
  nodeId: string,
  trust: 'untrusted' | 'pending' | 'trusted' | 'revoked',
): string {
  switch (trust) {
    case 'trusted':
      return `its trust decision (trusted) stays; \`sark-fed trust revoke ${nodeId}\` ends it`;
    case 'pending':
      return `its trust decision (pending) stays; \`sark-fed trust approve ${nodeId}\` or \`trust revoke\` settles it`;
    case 'revoked':
      return `its revocation stays: found again, it is not trusted until \`sark-fed trust establish ${nodeId}\``;
    case 'untrusted':
      return `the record that it revoked this node stays (\`sark-fed trust show ${nodeId}\`)`;
  }
}
