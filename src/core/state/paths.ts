import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

export type Environment = Readonly<Record<string, string | undefined>>;

/**
 * Where the state file lives (DESIGN §7): --state, then SARK_FED_STATE, then
 * $SARK_FED_HOME/state.db, with SARK_FED_HOME defaulting to $XDG_STATE_HOME/sark-fed or
 * ~/.local/state/sark-fed.
 */
export function resolveStatePath(flag: string | undefined, env: Environment): string {
  // Absolute, so that messages, `status` and --json name the file unambiguously.
  if (flag) return resolve(flag);
  if (env.SARK_FED_STATE) return resolve(env.SARK_FED_STATE);
  return resolve(resolveHome(env), 'state.db');
}

export function resolveHome(env: Environment): string {
  if (env.SARK_FED_HOME) return env.SARK_FED_HOME;
  const stateHome = env.XDG_STATE_HOME || join(env.HOME || homedir(), '.local', 'state');
  return join(stateHome, 'sark-fed');
}
