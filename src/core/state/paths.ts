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
  if (flag) return resolve(expandHome(flag, env));
  if (env.SARK_FED_STATE) return resolve(expandHome(env.SARK_FED_STATE, env));
  return resolve(resolveHome(env), 'state.db');
}

export function resolveHome(env: Environment): string {
  if (env.SARK_FED_HOME) return expandHome(env.SARK_FED_HOME, env);
  const stateHome = env.XDG_STATE_HOME
    ? expandHome(env.XDG_STATE_HOME, env)
    : join(homeOf(env), '.local', 'state');
  return join(stateHome, 'sark-fed');
}

/**
 * A leading `~` or `~/` names the home folder, as the shell would have made it: the shell does
 * not expand it in `--state=~/…`, nor in a value quoted or read from a unit or an env file, and
 * taken literally it made a folder named `~` in the working folder. `~user` is left as it is.
 */
function expandHome(path: string, env: Environment): string {
  if (path === '~') return homeOf(env);
  if (path.startsWith('~/')) return join(homeOf(env), path.slice(2));
  return path;
}

function homeOf(env: Environment): string {
  return env.HOME || homedir();
}
