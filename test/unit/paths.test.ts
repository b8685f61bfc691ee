import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveHome, resolveStatePath } from '../../src/core/state/paths.js';

const ALL = {
  SARK_FED_STATE: '/env/state.db',
  SARK_FED_HOME: '/sark-home',
  XDG_STATE_HOME: '/xdg',
  HOME: '/home/op',
};

describe('resolveStatePath', () => {
  it('takes --state first', () => {
    expect(resolveStatePath('/flag.db', ALL)).toBe('/flag.db');
  });

  it('then SARK_FED_STATE', () => {
    expect(resolveStatePath(undefined, ALL)).toBe('/env/state.db');
  });

  it('then SARK_FED_HOME/state.db', () => {
    expect(resolveStatePath(undefined, { ...ALL, SARK_FED_STATE: undefined })).toBe(
      '/sark-home/state.db',
    );
  });

  it('then XDG_STATE_HOME/sark-fed/state.db', () => {
    expect(resolveStatePath(undefined, { XDG_STATE_HOME: '/xdg', HOME: '/home/op' })).toBe(
      '/xdg/sark-fed/state.db',
    );
  });

  it('then HOME/.local/state/sark-fed/state.db', () => {
    expect(resolveStatePath(undefined, { HOME: '/home/op' })).toBe(
      '/home/op/.local/state/sark-fed/state.db',
    );
  });

  it('then the home folder of the user when HOME is not set', () => {
    expect(resolveStatePath(undefined, {})).toBe(
      join(homedir(), '.local', 'state', 'sark-fed', 'state.db'),
    );
  });

  it('treats empty variables as unset', () => {
    expect(
      resolveStatePath('', {
        SARK_FED_STATE: '',
        SARK_FED_HOME: '',
        XDG_STATE_HOME: '',
        HOME: '/home/op',
      }),
    ).toBe('/home/op/.local/state/sark-fed/state.db');
  });

  it('makes a relative --state absolute against the working folder', () => {
    expect(resolveStatePath('./node-a/state.db', ALL)).toBe(resolve('./node-a/state.db'));
  });

  it('reads a leading ~ or ~/ as the home folder, in the flag and in every variable', () => {
    const home = { HOME: '/home/op' };
    expect(resolveStatePath('~/fed/state.db', home)).toBe('/home/op/fed/state.db');
    expect(resolveStatePath(undefined, { ...home, SARK_FED_STATE: '~/a.db' })).toBe(
      '/home/op/a.db',
    );
    expect(resolveStatePath(undefined, { ...home, SARK_FED_HOME: '~' })).toBe('/home/op/state.db');
    expect(resolveStatePath(undefined, { ...home, XDG_STATE_HOME: '~/state' })).toBe(
      '/home/op/state/sark-fed/state.db',
    );
  });

  it('leaves ~user and a ~ inside a path as they are', () => {
    expect(resolveStatePath('~op/state.db', { HOME: '/home/op' })).toBe(resolve('~op/state.db'));
    expect(resolveStatePath('/srv/~/state.db', { HOME: '/home/op' })).toBe('/srv/~/state.db');
  });

  it('resolveHome is the folder of the default state file', () => {
    expect(resolveHome({ ...ALL, SARK_FED_STATE: undefined })).toBe('/sark-home');
    expect(resolveHome({ XDG_STATE_HOME: '/xdg' })).toBe('/xdg/sark-fed');
  });
});
