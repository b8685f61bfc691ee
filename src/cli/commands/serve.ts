import { Option, type Command } from 'commander';
import { UsageError } from '../../core/errors.js';
import { action } from '../action.js';
import { withExamples } from '../help-text.js';
import { listenAddress } from '../options.js';
import type { CliIo } from '../output/output.js';
import { packageVersion } from '../version.js';

interface ServeOptions {
  listen?: { host: string; port: number };
  requireApproval?: boolean;
}

export function registerServe(program: Command, io: CliIo): void {
  const command = program
    .command('serve')
    .description('run the node daemon that answers peers over mutual TLS (JSON logs on stderr)')
    .addOption(
      new Option(
        '--listen <host:port>',
        'address to listen on (default: the endpoint given to init)',
      )
        .env('FEDERATION_LISTEN_ADDRESS')
        .argParser(listenAddress),
    )
    .option('--require-approval', 'record new peers as pending until `sark-fed trust approve`')
    .action(
      action<ServeOptions>(io, async (context, options) => {
        const { startDaemon } = await import('../../node/daemon.js');
        const { jsonLogger } = await import('../../node/logger.js');
        const { openState } = await import('../../core/state/database.js');
        const { loadIdentity } = await import('../../core/state/identity-repository.js');

        let address = options.listen;
        if (!address) {
          const store = openState(context.statePath, { create: false });
          const endpoint = (() => {
            try {
              return store.read(loadIdentity)?.endpoint;
            } finally {
              store.close();
            }
          })();
          if (!endpoint) {
            throw new UsageError('NO_LISTEN_ADDRESS', 'no address to listen on', {
              hint: 'pass --listen host:port, set FEDERATION_LISTEN_ADDRESS, or give init an --endpoint',
            });
          }
          const url = new URL(endpoint);
          address = {
            host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
            port: Number(url.port || 443),
          };
        }

        const logger = jsonLogger(io.stderr);
        const daemon = await startDaemon({
          statePath: context.statePath,
          host: address.host,
          port: address.port,
          requireApproval: options.requireApproval === true,
          version: packageVersion(),
          logger,
        });
        await new Promise<void>((resolve) => {
          const stop = (signal: string) => {
            process.off('SIGTERM', onTerm);
            process.off('SIGINT', onInt);
            logger.info('signal received', { signal });
            daemon.close().then(resolve, resolve);
          };
          const onTerm = () => stop('SIGTERM');
          const onInt = () => stop('SIGINT');
          process.on('SIGTERM', onTerm);
          process.on('SIGINT', onInt);
        });
      }),
    );
  withExamples(command, [
    ['Serve on the endpoint recorded by init', 'sark-fed serve'],
    [
      'Serve on a given address, approving new peers by hand',
      'sark-fed serve --listen 127.0.0.1:8443 --require-approval',
    ],
    [
      'Check it with curl',
      'curl --cert node-b/cert.pem --key node-b/key.pem --cacert ca-a/ca.pem https://127.0.0.1:8443/api/v2/federation/info',
    ],
  ]);
}
