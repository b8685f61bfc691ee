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

  it('resolveHome is the folder of the default state file', () => {
    expect(resolveHome({ ...ALL, SARK_FED_STATE: undefined })).toBe('/sark-home');
    expect(resolveHome({ XDG_STATE_HOME: '/xdg' })).toBe('/xdg/sark-fed');
  });
});
