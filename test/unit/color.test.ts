import { describe, expect, it } from 'vitest';
import { colorLevel } from '../../src/cli/output/color.js';

describe('colorLevel', () => {
  it.each([
    ['a terminal', {}, true, true, 1],
    ['a pipe', {}, true, false, 0],
    ['--no-color on a terminal', {}, false, true, 0],
    ['--no-color beats FORCE_COLOR', { FORCE_COLOR: '3' }, false, true, 0],
    ['NO_COLOR on a terminal', { NO_COLOR: '1' }, true, true, 0],
    ['NO_COLOR with any value', { NO_COLOR: 'yes' }, true, true, 0],
    ['NO_COLOR beats FORCE_COLOR', { NO_COLOR: '1', FORCE_COLOR: '3' }, true, true, 0],
    ['an empty NO_COLOR is ignored (no-color.org)', { NO_COLOR: '' }, true, true, 1],
    ['FORCE_COLOR=0 on a terminal', { FORCE_COLOR: '0' }, true, true, 0],
    ['FORCE_COLOR=false on a terminal', { FORCE_COLOR: 'false' }, true, true, 0],
    ['FORCE_COLOR=1 in a pipe', { FORCE_COLOR: '1' }, true, false, 1],
    ['FORCE_COLOR= (empty) in a pipe', { FORCE_COLOR: '' }, true, false, 1],
    ['FORCE_COLOR=true in a pipe', { FORCE_COLOR: 'true' }, true, false, 1],
    ['FORCE_COLOR=2 in a pipe', { FORCE_COLOR: '2' }, true, false, 2],
    ['FORCE_COLOR=3 in a pipe', { FORCE_COLOR: '3' }, true, false, 3],
    ['FORCE_COLOR=3 with TERM=dumb', { FORCE_COLOR: '3', TERM: 'dumb' }, true, false, 3],
    ['an unknown FORCE_COLOR value', { FORCE_COLOR: 'always' }, true, false, 1],
    ['TERM=dumb on a terminal', { TERM: 'dumb' }, true, true, 0],
    ['a 256-colour terminal', { TERM: 'xterm-256color' }, true, true, 2],
    ['a truecolor terminal', { COLORTERM: 'truecolor' }, true, true, 3],
    ['COLORTERM=24bit', { COLORTERM: '24bit', TERM: 'xterm' }, true, true, 3],
    ['COLORTERM in a pipe', { COLORTERM: 'truecolor' }, true, false, 0],
  ] as const)('%s → %i', (_label, env, colorFlag, isTTY, expected) => {
    expect(colorLevel(env, colorFlag, isTTY)).toBe(expected);
  });
});
