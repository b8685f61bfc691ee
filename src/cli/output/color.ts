import type { Environment } from '../../core/state/paths.js';

/**
 * The colour level (0 none … 3 truecolor) for a stream. chalk reads FORCE_COLOR but not NO_COLOR,
 * so the whole policy lives here: --no-color, then NO_COLOR (https://no-color.org: any non-empty
 * value), then FORCE_COLOR, then whether the stream is a terminal.
 */
export function colorLevel(env: Environment, colorFlag: boolean, isTTY: boolean): 0 | 1 | 2 | 3 {
  if (!colorFlag) return 0;
  if (env.NO_COLOR) return 0;
  const force = env.FORCE_COLOR;
  if (force !== undefined) {
    if (force === '0' || force === 'false') return 0;
    if (force === '' || force === 'true' || force === '1') return 1;
    if (force === '2') return 2;
    if (force === '3') return 3;
    return 1;
  }
  if (!isTTY || env.TERM === 'dumb') return 0;
  if (env.COLORTERM === 'truecolor' || env.COLORTERM === '24bit') return 3;
  return env.TERM?.includes('256') ? 2 : 1;
}
