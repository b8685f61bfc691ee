import { describe, expect, it } from 'vitest';
import { bindError } from '../../src/cli/commands/serve.js';
import { SarkError } from '../../src/core/errors.js';
import { BindError } from '../../src/node/daemon.js';

/**
 * How `serve` words a socket it could not bind. The codes a real bind gives on loopback
 * (EADDRINUSE, EACCES, EADDRNOTAVAIL) are exercised with real processes in test/e2e; a host name
 * that does not resolve cannot be, without asking a DNS server off this machine: here the
 * resolver's error codes are given as the system would give them.
 */

const listening = { host: '127.0.0.1', port: 8443 };
const failure = (socket: 'listen' | 'metrics', host: string, code: string) =>
  new BindError(
    socket,
    host,
    8443,
    Object.assign(new Error(`getaddrinfo ${code} ${host}`), { code }),
  );

describe('bindError', () => {
  it.for(['ENOTFOUND', 'EAI_AGAIN', 'EAI_FAIL'])(
    'a host name that does not resolve (%s) is an operation error naming it, with a hint',
    (code) => {
      const error = bindError(failure('listen', 'node-b.nowhere', code), listening);
      expect(error).toBeInstanceOf(SarkError);
      expect(error).toMatchObject({
        kind: 'failed',
        code: 'ADDRESS_UNRESOLVED',
        message:
          'cannot listen on node-b.nowhere:8443: the host name node-b.nowhere does not resolve here',
        hint: 'pass --listen with an IP address of this machine, e.g. 127.0.0.1',
      });
      const metrics = bindError(failure('metrics', 'metrics.nowhere', code), listening);
      expect(metrics).toMatchObject({
        message: expect.stringMatching(
          /^cannot serve metrics on metrics\.nowhere:8443: /,
        ) as unknown,
        hint: expect.stringMatching(/^pass --metrics /) as unknown,
      });
    },
  );

  it('passes on an error it has no words for, as it came', () => {
    const cause = Object.assign(new Error('odd'), { code: 'EODD' });
    expect(bindError(new BindError('listen', '127.0.0.1', 8443, cause), listening)).toBe(cause);
  });
});
