import { describe, expect, it } from 'vitest';
import { jsonLogger, textLogger } from '../../../src/node/logger.js';

const NOW = () => new Date('2026-11-26T14:52:01.123Z');

function capture(): { lines: () => string[]; stream: { write(chunk: string): void } } {
  let written = '';
  return {
    lines: () => written.split('\n').filter((line) => line !== ''),
    stream: { write: (chunk) => (written += chunk) },
  };
}

describe('textLogger', () => {
  it('writes the time, the level, the message and the fields as key=value', () => {
    const out = capture();
    const logger = textLogger(out.stream, { now: NOW });
    logger.info('listening', { address: '127.0.0.1', port: 8443 });
    logger.warn('request', {
      status: 403,
      peer: null,
      code: 'NOT_TRUSTED',
      skipped: undefined,
      ok: false,
    });
    logger.error('request failed', { error: 'Error: boom "x" = y', empty: '' });
    logger.info('serving resources', {
      resources: [{ id: 'echo', capabilities: ['echo'] }],
    });
    expect(out.lines()).toEqual([
      '2026-11-26T14:52:01.123Z INFO  listening address=127.0.0.1 port=8443',
      '2026-11-26T14:52:01.123Z WARN  request status=403 peer=null code=NOT_TRUSTED ok=false',
      '2026-11-26T14:52:01.123Z ERROR request failed error="Error: boom \\"x\\" = y" empty=""',
      '2026-11-26T14:52:01.123Z INFO  serving resources resources=[{"id":"echo","capabilities":["echo"]}]',
    ]);
  });

  it('colours with the styles it is given, and keeps only warnings and errors when quiet', () => {
    const out = capture();
    const logger = textLogger(out.stream, {
      now: NOW,
      quiet: true,
      styles: {
        dim: (text) => `<dim>${text}</dim>`,
        yellow: (text) => `<yellow>${text}</yellow>`,
        red: (text) => `<red>${text}</red>`,
      },
    });
    logger.info('request', { status: 200 });
    logger.warn('slow');
    logger.error('broken');
    expect(out.lines()).toEqual([
      '<dim>2026-11-26T14:52:01.123Z</dim> <yellow>WARN </yellow> slow',
      '<dim>2026-11-26T14:52:01.123Z</dim> <red>ERROR</red> broken',
    ]);
  });
});

describe('jsonLogger', () => {
  it('writes one JSON object a line, fields beside time, level and msg', () => {
    const out = capture();
    jsonLogger(out.stream, { now: NOW }).info('listening', { port: 8443 });
    expect(out.lines().map((line) => JSON.parse(line) as unknown)).toEqual([
      { time: '2026-11-26T14:52:01.123Z', level: 'info', msg: 'listening', port: 8443 },
    ]);
  });
});
