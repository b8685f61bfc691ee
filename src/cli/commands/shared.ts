import type { KeyObject } from 'node:crypto';
import type { NodeIdentity } from '../../core/identity/node-identity.js';
import type { StateStore } from '../../core/state/database.js';
import type { TrustLevel } from '../../core/state/trust-repository.js';
import type { CommandContext } from '../context.js';
import type { Cell } from '../output/output.js';

/** Runs with the state file open (created only when asked), and closes it whatever happens. */
export async function withStore<T>(
  context: CommandContext,
  use: (store: StateStore) => T | Promise<T>,
  create = false,
): Promise<T> {
  const { openState } = await import('../../core/state/database.js');
  const { existsSync } = await import('node:fs');
  // A command that may create the state file says so when it does: a mistyped --state would
  // otherwise leave a new, empty node's file behind without a word.
  const creating = create && !existsSync(context.statePath);
  const store = openState(context.statePath, { create });
  try {
    const result = await use(store);
    if (creating) context.output.info(`created the state file ${store.path}`);
    return result;
  } finally {
    store.close();
  }
}

export interface LocalNode {
  store: StateStore;
  identity: NodeIdentity;
  privateKey: KeyObject;
}

/** Runs with the state, this node's identity and its private key: what talking to peers needs. */
export async function withNode<T>(
  context: CommandContext,
  use: (node: LocalNode) => Promise<T>,
): Promise<T> {
  const { loadIdentity } = await import('../../core/state/identity-repository.js');
  const { loadNodeKey } = await import('../../core/identity/keys.js');
  const { NotFoundError } = await import('../../core/errors.js');
  return withStore(context, async (store) => {
    const identity = store.read(loadIdentity);
    if (!identity) {
      throw new NotFoundError('NO_IDENTITY', `no node identity in ${context.statePath}`, {
        hint: 'run `sark-fed init` first',
      });
    }
    return use({ store, identity, privateKey: loadNodeKey(identity) });
  });
}

export function levelCell(level: TrustLevel): Cell {
  const style = (
    { trusted: 'green', pending: 'yellow', revoked: 'red', untrusted: 'dim' } as const
  )[level];
  return { text: level, style };
}

/** Fingerprints are long: the first 16 hex digits on a terminal, all 64 in a pipe or JSON. */
export function shortOnTty(context: CommandContext, fingerprint: string | null): string {
  if (!fingerprint) return '-';
  return context.output.stdoutIsTTY ? fingerprint.slice(0, 16) : fingerprint;
}
