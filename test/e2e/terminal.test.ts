/**
 * The CLI at a terminal: a pseudo-terminal from util-linux `script`, 100 columns wide, as an
 * operator's shell gives one. Spinners and prompts only appear there, and they load libraries no
 * scripted run loads (ora, @inquirer/prompts), from inside each command's bundle: these tests
 * run them as a person would see them.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/cli.js';
import { makeNode } from '../helpers/federation.js';
import { createCa } from '../helpers/pki.js';
import { runInTerminal } from '../helpers/terminal.js';

describe('at a terminal', () => {
  it('shows a spinner while a command works (ora, bundled)', async () => {
    const root = tempDir();
    const ca = await createCa(join(root, 'ca'), ['--trust-domain', 'org-a.example']);
    const node = await makeNode(root, ca.dir, 'node-a', 'org-a.example');
    const run = await runInTerminal(['--state', node.state, 'audit', 'verify'], undefined, 20_000, {
      NO_COLOR: undefined,
    });
    expect(run.screen).not.toContain('internal error');
    expect(run.screen).toContain('verifying the audit trail');
    expect(run.code, run.screen).toBe(0);
    // Coloured at a terminal; with NO_COLOR (or --no-color) not even the spinner is.
    const SGR_COLOUR = /\u001b\[(?:3|9)\dm/;
    expect(run.screen).toMatch(SGR_COLOUR);
    for (const [extra, env] of [
      [[], { NO_COLOR: '1' }],
      [['--no-color'], { NO_COLOR: undefined }],
    ] as const) {
      const plain = await runInTerminal(
        ['--state', node.state, 'audit', 'verify', ...extra],
        undefined,
        20_000,
        env,
      );
      expect(plain.code, plain.screen).toBe(0);
      expect(plain.screen).toContain('verifying the audit trail');
      expect(plain.screen).not.toMatch(SGR_COLOUR);
    }
  });

  it('asks before overwriting, and a "no" leaves the files alone (@inquirer/prompts)', async () => {
    const root = tempDir();
    const ca = await createCa(join(root, 'ca'), ['--trust-domain', 'org-a.example']);
    const run = await runInTerminal(
      ['pki', 'ca', 'create', '--out', ca.dir, '--trust-domain', 'org-b.example'],
      { when: '(y/N)', keys: 'n\r' },
    );
    expect(run.screen).not.toContain('internal error');
    expect(run.screen).toContain('Overwrite');
    expect(run.screen).toContain('nothing was written');
    expect(run.code, run.screen).toBe(0);
    expect(existsSync(ca.certPath)).toBe(true);
  });

  it('serve logs text lines for a person, JSON with --log-format json, and stops on Ctrl-C', async () => {
    const root = tempDir();
    const ca = await createCa(join(root, 'ca'), ['--trust-domain', 'org-a.example']);
    const node = await makeNode(root, ca.dir, 'node-a', 'org-a.example');
    const serve = ['--state', node.state, 'serve', '--listen', '127.0.0.1:0'];
    const ctrlC = { when: 'listening', keys: '\u0003' };

    const text = await runInTerminal(serve, ctrlC, 20_000, { NO_COLOR: undefined });
    expect(text.code, text.screen).toBe(0);
    const lines = text.screen.replace(/\u001b\[[0-9;]*m/g, '').split(/\r?\n/);
    expect(lines).toContainEqual(
      expect.stringMatching(
        /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO  listening address=127\.0\.0\.1 port=\d+ node_id=node-a spiffe_id=spiffe:\/\/org-a\.example\/sark\/node\/node-a$/,
      ),
    );
    expect(lines).toContainEqual(expect.stringMatching(/ INFO  signal received signal=SIGINT$/));
    expect(lines).toContainEqual(expect.stringMatching(/ INFO  stopped$/));
    expect(text.screen).not.toContain('{"time"');
    // The time dimmed on a colour terminal.
    expect(text.screen).toMatch(/\u001b\[2m\d{4}-/);

    const json = await runInTerminal([...serve, '--log-format', 'json'], ctrlC);
    expect(json.code, json.screen).toBe(0);
    expect(json.screen).toMatch(/^\{"time":"[^"]+","level":"info","msg":"listening",/m);
  });
});
