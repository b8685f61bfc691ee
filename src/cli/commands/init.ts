import { Option, type Command } from 'commander';
import { action } from '../action.js';
import { withExamples } from '../help-text.js';
import type { CliIo } from '../output/output.js';
import type { TrustCounts } from '../../core/state/trust-repository.js';
import { readStatusExtras, renderStatus, type StatusExtras } from './status.js';

interface InitOptions {
  nodeId: string;
  trustDomain: string;
  cert: string;
  key: string;
  chain?: string;
  ca?: string;
  endpoint?: string;
}

export function registerInit(program: Command, io: CliIo): void {
  const command = program
    .command('init')
    .description(
      "record this node's identity (node ID, trust domain, certificate, key) in the state file",
    )
    .addOption(
      new Option('--node-id <id>', "this node's ID")
        .env('FEDERATION_NODE_ID')
        .makeOptionMandatory(),
    )
    .requiredOption(
      '--trust-domain <domain>',
      "this organization's trust domain, e.g. org-a.example",
    )
    .addOption(
      new Option('--cert <pem>', 'node certificate (leaf first)')
        .env('FEDERATION_NODE_CERT_PATH')
        .makeOptionMandatory(),
    )
    .addOption(
      new Option('--key <pem>', 'private key of the certificate (mode 0600)')
        .env('FEDERATION_NODE_KEY_PATH')
        .makeOptionMandatory(),
    )
    .option('--chain <pem>', 'intermediate certificates, each followed by its issuer')
    .addOption(
      new Option(
        '--ca <pem>',
        "this organization's CA certificate: becomes the trust anchor of this trust domain",
      ).env('FEDERATION_CA_CERT_PATH'),
    )
    .option('--endpoint <url>', 'where peers reach this node, https://host:port')
    .action(
      action<InitOptions>(io, async (context, options) => {
        const { prepareIdentity } = await import('../../core/identity/node-identity.js');
        const { openState } = await import('../../core/state/database.js');
        const { loadIdentity, saveIdentity } =
          await import('../../core/state/identity-repository.js');

        const { identity: prepared } = prepareIdentity({
          nodeId: options.nodeId,
          trustDomain: options.trustDomain,
          certPath: options.cert,
          keyPath: options.key,
          chainPath: options.chain,
          endpoint: options.endpoint,
          now: context.now(),
        });

        const { countTrust } = await import('../../core/state/trust-repository.js');
        const { prepareOwnAnchor, recordAnchor } = await import('../../core/trust/anchor-store.js');
        const ownAnchor =
          options.ca === undefined
            ? undefined
            : prepareOwnAnchor(prepared, options.ca, context.now());
        const store = openState(context.statePath, { create: true });
        let counts: TrustCounts;
        let extras: StatusExtras;
        let changed: boolean;
        let identity = prepared;
        let keptEndpoint: string | null = null;
        try {
          const previous = store.read(loadIdentity);
          // init again for the same node (a renewed certificate) without --endpoint keeps the
          // endpoint recorded before: dropping it would leave serve with no address to listen on.
          if (
            options.endpoint === undefined &&
            previous?.spiffeId === prepared.spiffeId &&
            previous.endpoint !== null
          ) {
            identity = { ...prepared, endpoint: previous.endpoint };
            keptEndpoint = previous.endpoint;
          }
          changed =
            previous?.fingerprint !== identity.fingerprint ||
            previous.keyPath !== identity.keyPath ||
            previous.endpoint !== identity.endpoint;
          if (previous && previous.fingerprint !== identity.fingerprint) {
            const confirmed = await context.prompter.confirm({
              message: `Replace the identity ${previous.spiffeId} recorded in ${context.statePath}?`,
              flag: '--yes',
              action: `replacing the identity ${previous.spiffeId}`,
            });
            if (!confirmed) {
              context.output.info('left the recorded identity as it was');
              return;
            }
          }
          store.write((db) => {
            saveIdentity(db, identity, context.now());
            if (ownAnchor) recordAnchor(db, ownAnchor);
          });
          counts = store.read(countTrust);
          extras = await readStatusExtras(store, context);
        } finally {
          store.close();
        }
        context.output.success(`initialised ${identity.spiffeId} in ${context.statePath}`);
        if (keptEndpoint !== null) {
          context.output.info(`kept the endpoint recorded before, ${keptEndpoint} (--endpoint)`);
        }
        const { daemon } = extras;
        if (changed && daemon.state === 'running') {
          // serve read the identity and key when it started, and answers with them until then.
          context.output.warn(
            `sark-fed serve (pid ${daemon.pid}) still answers with the identity it started with: restart it`,
          );
        }
        renderStatus(context, identity, counts, null, extras);
      }),
    );
  withExamples(command, [
    [
      'Record the identity issued by `sark-fed pki issue`',
      'sark-fed init --node-id node-a --trust-domain org-a.example --cert ./node-a/cert.pem --key ./node-a/key.pem --endpoint https://127.0.0.1:8443',
    ],
    [
      "Also trust this organization's CA for its own trust domain",
      'sark-fed init --node-id node-a --trust-domain org-a.example --cert ./node-a/cert.pem --key ./node-a/key.pem --ca ./ca-a/ca.pem',
    ],
    [
      'Keep a separate state file per node',
      'sark-fed --state ./node-a/state.db init --node-id node-a ...',
    ],
  ]);
}
