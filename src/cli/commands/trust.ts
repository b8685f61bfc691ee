import { Argument, type Command } from 'commander';
import type { StateStore } from '../../core/state/database.js';
import type { Peer, TrustAnchor } from '../../core/state/trust-repository.js';
import type { CommandContext } from '../context.js';
import { TrustError } from '../../core/errors.js';
import { action } from '../action.js';
import { completeWith, KNOWN_NODES } from '../completion/values.js';
import { withExamples } from '../help-text.js';
import { durationOption } from '../options.js';
import { levelCell, shortOnTty, withNode, withStore } from './shared.js';
import type { Cell, CliIo } from '../output/output.js';
import { count } from '../../core/plural.js';

interface EstablishOptions {
  fingerprint?: string;
  timeout: number;
}

interface RevokeOptions {
  reason?: string;
  notify: boolean;
  timeout: number;
}

export function registerTrust(program: Command, io: CliIo): void {
  const trust = program
    .command('trust')
    .description('mutual-TLS trust between nodes: anchors, CRLs, peers');

  const establish = trust
    .command('establish')
    .description('prove identities to a peer in both directions, then pin its certificate')
    .addArgument(
      completeWith(
        new Argument('<node|endpoint>', 'a known node ID, or https://host:port'),
        KNOWN_NODES,
      ),
    )
    .option('--fingerprint <sha256>', 'the peer certificate fingerprint you expect (no prompt)')
    .addOption(durationOption('--timeout <duration>', 'how long to wait for the peer', '10s'))
    .action(
      action<EstablishOptions>(io, async (context, options, [target]) => {
        const { establishTrust } = await import('../../core/trust/establish.js');
        const { normalizeFingerprint } = await import('../../core/identity/fingerprint.js');
        const givenFingerprint =
          options.fingerprint === undefined ? undefined : normalizeFingerprint(options.fingerprint);
        await withNode(context, async ({ store, identity, privateKey }) => {
          if (target === identity.nodeId) {
            // Named by its ID, this node is refused as by its endpoint (SELF), not as unknown.
            const { UsageError } = await import('../../core/errors.js');
            throw new UsageError('SELF', `${target} is this node itself`, {
              hint: 'name another node',
            });
          }
          const { endpoint, expectedNodeId, known, manualFingerprint } = await resolveTarget(
            context,
            store,
            target as string,
          );
          // What the operator wrote down (`nodes add --fingerprint`, a nodes file) is as good as
          // the flag; a fingerprint merely advertised by mDNS, DNS-SD or Consul never is.
          const expectedFingerprint = givenFingerprint ?? manualFingerprint;
          // A revoked peer is not called at all unless the operator restores trust on purpose.
          if (
            known?.trustLevel === 'revoked' &&
            expectedFingerprint === undefined &&
            !context.assumeYes &&
            !context.interactive
          ) {
            throw revokedHere(known.nodeId);
          }
          const spinner = await context.output.spinner(`establishing trust with ${target}`);
          let result;
          try {
            result = await establishTrust({
              store,
              identity,
              privateKey,
              endpoint,
              expectedNodeId,
              expectedFingerprint,
              timeoutMs: options.timeout,
              now: context.now,
              confirm: async (contact) => {
                spinner.stop();
                if (contact.wasRevoked && !context.assumeYes && !context.interactive) {
                  throw revokedHere(contact.peer.nodeId, true);
                }
                // A pinned peer presenting another certificate is a trust failure, not a first
                // contact: --yes does not accept it, at a terminal either; the operator names the
                // new fingerprint, or confirms it at the prompt.
                if (contact.previousFingerprint && (!context.interactive || context.assumeYes)) {
                  throw new TrustError(
                    'PIN_MISMATCH',
                    `${contact.peer.nodeId} presented fingerprint ${contact.peer.fingerprint}, not the pinned ${contact.previousFingerprint}`,
                    {
                      hint: 'if its operator re-issued its certificate, confirm the new fingerprint with them and run again with --fingerprint <sha256>',
                    },
                  );
                }
                if (!context.interactive || context.assumeYes) {
                  return context.prompter.confirm({
                    message: '',
                    flag: '--fingerprint <sha256> (or --yes to accept what the peer presents)',
                    action: `trusting ${contact.peer.spiffeId} on first contact`,
                  });
                }
                const { output } = context;
                output.info(output.err.bold(`${contact.endpoint} presents:`));
                output.info(`  SPIFFE ID    ${contact.peer.spiffeId}`);
                output.info(`  Subject      ${contact.certificate.subject}`);
                output.info(`  Issuer       ${contact.certificate.issuer}`);
                output.info(`  Valid until  ${contact.certificate.notAfter}`);
                output.info(`  Fingerprint  ${output.err.cyan(contact.peer.fingerprint)}`);
                if (contact.previousFingerprint) {
                  output.warn(
                    `its certificate changed; the pinned fingerprint was ${contact.previousFingerprint}`,
                  );
                }
                if (contact.wasRevoked)
                  output.warn(`${contact.peer.nodeId} is revoked here; confirming restores trust`);
                return context.prompter.confirm({
                  message: `Trust ${contact.peer.spiffeId} with this fingerprint?`,
                  flag: '--fingerprint <sha256>',
                  action: `trusting ${contact.peer.spiffeId}`,
                });
              },
            });
          } catch (error) {
            spinner.fail();
            throw error;
          }
          spinner.stop();
          if (!result) {
            context.output.info('nothing was recorded');
            return;
          }
          context.output.success(
            result.remoteStatus === 'pending'
              ? `trusted ${result.peer.spiffeId}; it recorded this node as pending its operator's approval`
              : `mutual trust established with ${result.peer.spiffeId}`,
          );
          if (context.output.json) {
            context.output.writeJson({
              peer: peerReport(result.peer),
              remoteStatus: result.remoteStatus,
              correlationId: result.correlationId,
            });
          } else {
            renderPeer(context, result.peer);
          }
        });
      }),
    );
  withExamples(establish, [
    [
      "In a script, with the fingerprint the peer's operator gave you",
      'sark-fed trust establish https://127.0.0.1:8443 --fingerprint 4f3a…e1',
    ],
    ['At a terminal: review the certificate and confirm', 'sark-fed trust establish node-b'],
  ]);

  const list = trust
    .command('list')
    .description('peers and their trust level')
    .option('--pending', 'only peers awaiting approval')
    .action(
      action<{ pending?: boolean }>(io, async (context, options) => {
        const { listPeers } = await import('../../core/state/trust-repository.js');
        const { peers, problems } = await withStore(context, async (store) => {
          const listed = store.read((db) => listPeers(db, options.pending ? 'pending' : undefined));
          return {
            peers: listed,
            problems: await certificateProblems(store, listed, context.now()),
          };
        });
        if (context.output.json) {
          context.output.writeJson(
            peers.map((peer) => ({
              ...peerReport(peer),
              certificateProblem: problems.get(peer.nodeId) ?? null,
            })),
          );
          return;
        }
        if (peers.length === 0)
          context.output.info(options.pending ? 'no peer awaits approval' : 'no peers yet');
        context.output.table(
          ['node', 'trust domain', 'trust', 'endpoint', 'fingerprint', 'expires', 'problem'],
          peers.map((peer) => {
            const problem = problems.get(peer.nodeId);
            return [
              peer.nodeId,
              peer.trustDomain,
              levelCell(peer.trustLevel),
              peer.endpoint ?? '-',
              shortOnTty(context, peer.pinnedFingerprint),
              peer.trustExpiresAt ?? '-',
              problem ? { text: `refused: ${problem.message}`, style: 'red' } : '-',
            ];
          }),
        );
      }),
    );
  withExamples(list, [
    ['Every peer, and how far it is trusted', 'sark-fed trust list'],
    ['Peers waiting for `trust approve`', 'sark-fed trust list --pending'],
    [
      'Trusted peers, for a script',
      'sark-fed trust list --json | jq -r \'.[] | select(.trustLevel == "trusted") | .nodeId\'',
    ],
  ]);

  const show = trust
    .command('show')
    .description('one peer in detail')
    .addArgument(completeWith(new Argument('<node>', 'node ID'), KNOWN_NODES))
    .action(
      action<object>(io, async (context, _options, [nodeId]) => {
        const { peer, problem } = await withStore(context, async (store) => {
          const found = await requirePeer(store, nodeId as string);
          const problems = await certificateProblems(store, [found], context.now());
          return { peer: found, problem: problems.get(found.nodeId) ?? null };
        });
        if (context.output.json) {
          context.output.writeJson({ ...peerReport(peer), certificateProblem: problem });
        } else {
          renderPeer(context, peer);
          if (problem) {
            context.output.warn(
              `${peer.nodeId} is ${peer.trustLevel}, but its pinned certificate is refused here: ${problem.message} (${problem.code})`,
            );
          }
        }
      }),
    );
  withExamples(show, [
    ['One peer: its trust, endpoint, pinned fingerprint and expiry', 'sark-fed trust show node-b'],
  ]);

  const approve = trust
    .command('approve')
    .description('trust a peer that is pending approval')
    .addArgument(completeWith(new Argument('<node>', 'node ID'), KNOWN_NODES))
    .action(
      action<object>(io, async (context, _options, [nodeId]) => {
        const { savePeer } = await import('../../core/state/trust-repository.js');
        const { UsageError } = await import('../../core/errors.js');
        const peer = await withStore(context, async (store) => {
          const current = await requirePeer(store, nodeId as string);
          if (current.trustLevel !== 'pending') {
            throw new UsageError(
              'NOT_PENDING',
              `${current.nodeId} is ${current.trustLevel}, not pending`,
              {
                hint: 'only peers that asked for trust while this node requires approval can be approved',
              },
            );
          }
          const approved: Peer = {
            ...current,
            trustLevel: 'trusted',
            updatedAt: context.now().toISOString(),
          };
          store.write((db) => savePeer(db, approved));
          return approved;
        });
        context.output.success(`approved ${peer.spiffeId}`);
        if (context.output.json) context.output.writeJson(peerReport(peer));
      }),
    );
  withExamples(approve, [
    [
      'Trust a peer that asked while this node runs `serve --require-approval`',
      'sark-fed trust approve node-c',
    ],
  ]);

  const revoke = trust
    .command('revoke')
    .description('stop trusting a peer at once, and tell it so')
    .addArgument(completeWith(new Argument('<node>', 'node ID'), KNOWN_NODES))
    .option('--reason <text>', 'why, recorded here and sent to the peer')
    .option('--no-notify', 'do not tell the peer')
    .addOption(
      durationOption(
        '--timeout <duration>',
        'how long to wait for the peer when notifying it',
        '5s',
      ),
    )
    .action(
      action<RevokeOptions>(io, async (context, options, [nodeId]) => {
        const { revokePeer, notifyRevocation } = await import('../../core/trust/revoke.js');
        await withNode(context, async ({ store, identity, privateKey }) => {
          const peer = await requirePeer(store, nodeId as string);
          const confirmed = await context.prompter.confirm({
            message: `Revoke trust in ${peer.spiffeId}? Its requests will be refused at once.`,
            flag: '--yes',
            action: `revoking ${peer.nodeId}`,
          });
          if (!confirmed) {
            context.output.info('nothing was changed');
            return;
          }
          const revoked = revokePeer(store, peer.nodeId, options.reason ?? null, context.now());
          context.output.success(`revoked ${revoked.spiffeId}`);
          let notified: boolean | null = null;
          if (options.notify && revoked.endpoint) {
            try {
              await notifyRevocation({
                store,
                identity,
                privateKey,
                peer: revoked,
                reason: options.reason,
                timeoutMs: options.timeout,
                now: context.now,
              });
              notified = true;
              context.output.info(`notified ${revoked.nodeId}`);
            } catch (error) {
              notified = false;
              context.output.warn(
                `could not notify ${revoked.nodeId}: ${(error as Error).message}`,
              );
            }
          }
          if (context.output.json)
            context.output.writeJson({ peer: peerReport(revoked), notified });
        });
      }),
    );
  withExamples(revoke, [
    ['Revoke and notify', 'sark-fed trust revoke node-b --reason "key compromise" --yes'],
    ['Revoke without contacting the peer', 'sark-fed trust revoke node-b --yes --no-notify'],
  ]);

  registerAnchorCommands(trust, io);
}

function registerAnchorCommands(trust: Command, io: CliIo): void {
  const anchor = trust
    .command('anchor')
    .description('trust anchors: CA certificates, each bound to one trust domain');
  const add = anchor
    .command('add')
    .description('import a CA certificate as the anchor of a trust domain')
    .argument('<ca.pem>', 'CA certificate (PEM or DER)')
    .option(
      '--trust-domain <domain>',
      'the domain it vouches for (default: the one its SPIFFE ID names)',
    )
    .action(
      action<{ trustDomain?: string }>(io, async (context, options, [file]) => {
        const { addAnchor } = await import('../../core/trust/anchor-store.js');
        const { anchorCertificateFromBytes } = await import('../../core/identity/pem.js');
        const { readInputFile } = await import('../../core/identity/files.js');
        const der = anchorCertificateFromBytes(
          readInputFile(file as string, 'CA certificate'),
          file as string,
        );
        const result = await withStore(
          context,
          (store) => addAnchor(store, der, options.trustDomain, context.now()),
          true,
        );
        if (result.added)
          context.output.success(
            `added anchor for ${result.anchor.trustDomain}: ${result.anchor.subject}`,
          );
        else
          context.output.info(
            `already an anchor for ${result.anchor.trustDomain}: ${result.anchor.subject}`,
          );
        if (context.output.json)
          context.output.writeJson({ ...anchorReport(result.anchor), added: result.added });
        else context.output.line(result.anchor.fingerprint);
      }),
    );
  withExamples(add, [
    [
      "Trust org B's CA for org B's nodes only",
      'sark-fed trust anchor add ./ca-b/ca.pem --trust-domain org-b.example',
    ],
  ]);

  const anchorList = anchor
    .command('list')
    .description('the trust anchors, by trust domain')
    .action(
      action<object>(io, async (context) => {
        const { listAnchors } = await import('../../core/state/trust-repository.js');
        const anchors = await withStore(context, (store) => store.read((db) => listAnchors(db)));
        if (context.output.json) {
          context.output.writeJson(anchors.map(anchorReport));
          return;
        }
        if (anchors.length === 0)
          context.output.info('no trust anchors yet; add one with `sark-fed trust anchor add`');
        context.output.table(
          ['trust domain', 'subject', 'fingerprint', 'expires'],
          anchors.map((item) => [
            item.trustDomain,
            item.subject,
            shortOnTty(context, item.fingerprint),
            item.notAfter,
          ]),
        );
      }),
    );
  withExamples(anchorList, [
    ['The CAs this node accepts, by trust domain', 'sark-fed trust anchor list'],
    [
      'Whole fingerprints, for `anchor remove`',
      "sark-fed trust anchor list --json | jq -r '.[].fingerprint'",
    ],
  ]);

  const anchorRemove = anchor
    .command('remove')
    .description('remove a trust anchor')
    .argument('<fingerprint>', 'its SHA-256 fingerprint, or the first 16 digits or more of it')
    .action(
      action<object>(io, async (context, _options, [fingerprint]) => {
        const { removeAnchor } = await import('../../core/trust/anchor-store.js');
        const { normalizeFingerprint } = await import('../../core/identity/fingerprint.js');
        const given = fingerprint as string;
        const { canonical, removed } = await withStore(context, async (store) => {
          // The 16 digits `anchor list` shows on a terminal name an anchor as well as all 64.
          const full = /^[0-9a-f]{16,63}$/i.test(given)
            ? await anchorByPrefix(store, given.toLowerCase())
            : normalizeFingerprint(given);
          return { canonical: full, removed: removeAnchor(store, full) };
        });
        context.output.success(`removed anchor ${canonical}`);
        if (removed.peersWithoutAnchor.length > 0) {
          context.output.warn(
            `no anchor is left for ${removed.trustDomain}: ${removed.peersWithoutAnchor.join(', ')} can no longer be authenticated, and calls to and from ${removed.peersWithoutAnchor.length === 1 ? 'it' : 'them'} are refused until one is added again`,
          );
        }
        if (context.output.json) {
          context.output.writeJson({ fingerprint: canonical, removed: true, ...removed });
        }
      }),
    );
  withExamples(anchorRemove, [
    [
      'Stop accepting a CA (its whole SHA-256 fingerprint, from `anchor list --json`)',
      'sark-fed trust anchor remove 6e8bfa7f0d165c0641dd7bb59176153190eb2dc531c55665c3b26d2e8bed7621',
    ],
  ]);

  const crl = trust.command('crl').description('certificate revocation lists of the anchors');
  const crlImport = crl
    .command('import')
    .description('import a CRL signed by a trust anchor; revoked certificates are refused at once')
    .argument('<crl>', 'CRL file, PEM or DER')
    .action(
      action<object>(io, async (context, _options, [file]) => {
        const { importRevocationList } = await import('../../core/trust/anchor-store.js');
        const { readInputFile } = await import('../../core/identity/files.js');
        const { pemBlocks } = await import('../../core/identity/pem.js');
        const bytes = readInputFile(file as string, 'CRL');
        const block = pemBlocks(bytes.toString('latin1')).find((item) => item.label === 'X509 CRL');
        const list = await withStore(context, (store) =>
          importRevocationList(store, block?.der ?? bytes, context.now()),
        );
        context.output.success(
          `imported the CRL of ${list.issuer}: ${count(list.revokedCount, 'revoked certificate')}`,
        );
        const { revocationListReport } = await import('../../core/trust/crl-report.js');
        if (context.output.json)
          context.output.writeJson(revocationListReport(list, context.now()));
      }),
    );
  withExamples(crlImport, [
    [
      'Refuse the certificates a peer organization revoked',
      'sark-fed trust crl import ./org-b-crl.pem',
    ],
  ]);

  const crlList = crl
    .command('list')
    .description('the CRLs held, one per CA, and when each needs a fresh one')
    .action(
      action<object>(io, async (context) => {
        const { listRevocationLists } = await import('../../core/state/trust-repository.js');
        const { revocationListReport } = await import('../../core/trust/crl-report.js');
        const lists = await withStore(context, (store) =>
          store.read((db) => listRevocationLists(db)),
        );
        const reports = lists.map((list) => revocationListReport(list, context.now()));
        if (context.output.json) {
          context.output.writeJson(reports);
          return;
        }
        if (reports.length === 0) {
          context.output.info('no CRLs held; import one with `sark-fed trust crl import`');
        }
        context.output.table(
          ['issuer', 'revoked', 'next update', 'imported'],
          reports.map((report) => [
            report.issuer,
            String(report.revokedCount),
            nextUpdateCell(report),
            report.importedAt,
          ]),
        );
      }),
    );
  withExamples(crlList, [
    ['The CRLs held, and when each is due', 'sark-fed trust crl list'],
    [
      'Days until the first one is due, for a monitoring script',
      "sark-fed trust crl list --json | jq 'map(.nextUpdateInDays) | min'",
    ],
  ]);
}

/** A CRL's next update as the terminal shows it: red once passed, yellow within a week. */
function nextUpdateCell(report: {
  nextUpdate: string | null;
  nextUpdateInDays: number | null;
  expired: boolean;
}): Cell {
  if (report.nextUpdate === null) return '-';
  if (report.expired) {
    return {
      text: `${report.nextUpdate} (passed: its CA's certificates are refused)`,
      style: 'red',
    };
  }
  return {
    text: `${report.nextUpdate} (in ${count(report.nextUpdateInDays ?? 0, 'day')})`,
    style: (report.nextUpdateInDays ?? 0) < 7 ? 'yellow' : 'green',
  };
}

async function requirePeer(store: StateStore, nodeId: string): Promise<Peer> {
  const { findPeer } = await import('../../core/state/trust-repository.js');
  const { listSightings } = await import('../../core/state/discovery-repository.js');
  const { unknownNodeError } = await import('../../core/identity/spiffe.js');
  const { NotFoundError } = await import('../../core/errors.js');
  const { peer, sighted } = store.read((db) => ({
    peer: findPeer(db, nodeId),
    sighted: listSightings(db, nodeId).length > 0,
  }));
  if (peer) return peer;
  // Found by discovery or `nodes add`, but never met: "no node is known" would contradict
  // `nodes list`, and the way on is to establish trust.
  if (sighted) {
    throw new NotFoundError(
      'NO_TRUST_RECORD',
      `${nodeId} is known here but trust was never established with it`,
      { hint: `establish it first: sark-fed trust establish ${nodeId}` },
    );
  }
  throw unknownNodeError(nodeId, 'see `sark-fed trust list`');
}

async function resolveTarget(
  context: CommandContext,
  store: StateStore,
  target: string,
): Promise<{
  endpoint: string;
  expectedNodeId: string | undefined;
  known: Peer | undefined;
  /**
   * The fingerprint given to `nodes add --fingerprint` (else a nodes file's entry), used when
   * --fingerprint is absent.
   */
  manualFingerprint?: string | undefined;
}> {
  const { normalizeEndpoint } = await import('../../core/identity/node-identity.js');
  if (/^https:\/\//i.test(target))
    return { endpoint: normalizeEndpoint(target), expectedNodeId: undefined, known: undefined };
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(target)) {
    const { UsageError } = await import('../../core/errors.js');
    throw new UsageError('BAD_ENDPOINT', `${target} is not an https:// endpoint`, {
      hint: 'peers speak HTTPS with mutual TLS only: give https://host:port, or a known node ID',
    });
  }
  const { findPeer } = await import('../../core/state/trust-repository.js');
  const peer = store.read((db) => findPeer(db, target));
  const { findKnownNode } = await import('../../core/discovery/node-view.js');
  const sighted = store.read((db) => findKnownNode(db, target, context.now()));
  // The fingerprint the operator wrote down, if any: given to `nodes add`, else in a nodes file.
  // One merely advertised by mDNS, DNS-SD or Consul never counts.
  const writtenDown = (source: 'manual' | 'file') =>
    sighted?.sightings.find((item) => item.source === source)?.fingerprint ?? undefined;
  if (peer?.endpoint) {
    return {
      endpoint: peer.endpoint,
      expectedNodeId: peer.nodeId,
      known: peer,
      // A peer never pinned (`nodes add --trust-domain` makes one) is met for the first time:
      // what was written down for it counts. A pinned one is held to its pin.
      manualFingerprint:
        peer.pinnedFingerprint === null
          ? (writtenDown('manual') ?? writtenDown('file'))
          : undefined,
    };
  }
  // A node only discovered or added by hand (no trust domain yet, so no peer row): its freshest
  // sighting's endpoint (the one recorded by hand wins over a nodes file's).
  if (sighted?.endpoint) {
    return {
      endpoint: sighted.endpoint,
      expectedNodeId: target,
      known: peer,
      manualFingerprint: writtenDown('manual') ?? writtenDown('file'),
    };
  }
  if (peer) {
    const { UsageError } = await import('../../core/errors.js');
    throw new UsageError('NO_ENDPOINT', `no endpoint is recorded for ${target}`, {
      hint: `record one: sark-fed nodes add ${target} --endpoint https://host:port`,
    });
  }
  const { unknownNodeError } = await import('../../core/identity/spiffe.js');
  throw unknownNodeError(
    target,
    'give its endpoint instead: sark-fed trust establish https://host:port',
  );
}

/** `contacted`: the peer was reached (by endpoint) before it turned out to be revoked here. */
function revokedHere(nodeId: string, contacted = false): Error {
  const message = contacted
    ? `${nodeId} is revoked here`
    : `${nodeId} is revoked here; it is not called`;
  return new TrustError('PEER_REVOKED', message, {
    hint: 'to restore trust in it, run again with --fingerprint <sha256> (or --yes)',
  });
}

export function peerReport(peer: Peer) {
  const { certificatePem: _pem, ...rest } = peer;
  return rest;
}

function anchorReport(anchor: TrustAnchor) {
  const { certificateDer: _der, ...rest } = anchor;
  return rest;
}

function renderPeer(context: CommandContext, peer: Peer): void {
  context.output.fields([
    ['Node', peer.nodeId],
    ['Trust domain', peer.trustDomain],
    ['SPIFFE ID', peer.spiffeId],
    ['Trust', levelCell(peer.trustLevel)],
    ['Endpoint', peer.endpoint ?? '-'],
    ['Pinned', peer.pinnedFingerprint ?? '-'],
    ['Trust expires', peer.trustExpiresAt ?? '-'],
    ['Established', peer.establishedAt ?? '-'],
    ...(peer.revokedAt
      ? ([
          ['Revoked', `${peer.revokedAt}${peer.revokeReason ? ` (${peer.revokeReason})` : ''}`],
        ] as const)
      : []),
  ]);
}

type CertificateProblem = { code: string; message: string } | null;

/**
 * Whether a trusted or pending peer's pinned certificate would pass authentication now, against
 * the anchors and CRLs held here: an anchor removed, a CRL imported or the certificate expired
 * since trust was established leaves the peer "trusted" in name only, refused on every call.
 */
async function certificateProblems(
  store: StateStore,
  peers: readonly Peer[],
  now: Date,
): Promise<Map<string, CertificateProblem>> {
  const { trustMaterial } = await import('../../core/trust/trust-material.js');
  const { authenticateChain, isChainFailure } = await import('../../core/trust/authenticate.js');
  const { pemBlocks } = await import('../../core/identity/pem.js');
  const material = trustMaterial(store);
  const problems = new Map<string, CertificateProblem>();
  for (const peer of peers) {
    if (
      peer.certificatePem === null ||
      (peer.trustLevel !== 'trusted' && peer.trustLevel !== 'pending')
    ) {
      problems.set(peer.nodeId, null);
      continue;
    }
    const chain = pemBlocks(peer.certificatePem).map((block) => block.der);
    const result = authenticateChain(chain, material, now);
    problems.set(
      peer.nodeId,
      isChainFailure(result) ? { code: result.code, message: result.reason } : null,
    );
  }
  return problems;
}

/** The one anchor whose fingerprint starts with `prefix`: a usage error for several, 4 for none. */
async function anchorByPrefix(store: StateStore, prefix: string): Promise<string> {
  const { listAnchors } = await import('../../core/state/trust-repository.js');
  const { NotFoundError, UsageError } = await import('../../core/errors.js');
  const matching = store
    .read((db) => listAnchors(db))
    .filter((anchor) => anchor.fingerprint.startsWith(prefix));
  if (matching.length === 0) {
    throw new NotFoundError(
      'NO_SUCH_ANCHOR',
      `no trust anchor's fingerprint starts with ${prefix}`,
      {
        hint: 'list them with `sark-fed trust anchor list`',
      },
    );
  }
  if (matching.length > 1) {
    throw new UsageError(
      'AMBIGUOUS_FINGERPRINT',
      `${prefix} starts the fingerprints of ${matching.length} anchors`,
      {
        hint: 'give more digits, or the whole fingerprint (`sark-fed trust anchor list --json`)',
      },
    );
  }
  return (matching[0] as { fingerprint: string }).fingerprint;
}
