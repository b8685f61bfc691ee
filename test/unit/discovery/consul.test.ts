import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { consulTarget, serviceDefinition } from '../../../src/core/discovery/consul.js';
import { UsageError } from '../../../src/core/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'sark-fed-consul-unit-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('consulTarget: where Consul is, as its own tools read it', () => {
  const url = (env: Record<string, string>, flag?: string) =>
    consulTarget({ env, url: flag }).baseUrl.href;

  it('defaults to the local agent, http', () => {
    expect(url({})).toBe('http://127.0.0.1:8500/');
    expect(url({ CONSUL_HTTP_ADDR: '  ' })).toBe('http://127.0.0.1:8500/');
  });

  it('reads CONSUL_HTTP_ADDR as host:port or URL, https by scheme or CONSUL_HTTP_SSL', () => {
    expect(url({ CONSUL_HTTP_ADDR: 'consul.internal:8500' })).toBe('http://consul.internal:8500/');
    expect(url({ CONSUL_HTTP_ADDR: 'https://consul.internal:8501' })).toBe(
      'https://consul.internal:8501/',
    );
    expect(url({ CONSUL_HTTP_ADDR: 'consul.internal:8501', CONSUL_HTTP_SSL: 'true' })).toBe(
      'https://consul.internal:8501/',
    );
    expect(url({ CONSUL_HTTP_ADDR: 'consul.internal:8500', CONSUL_HTTP_SSL: 'false' })).toBe(
      'http://consul.internal:8500/',
    );
    // An explicit scheme wins over CONSUL_HTTP_SSL.
    expect(url({ CONSUL_HTTP_ADDR: 'http://c:8500', CONSUL_HTTP_SSL: '1' })).toBe('http://c:8500/');
    expect(url({ CONSUL_HTTP_ADDR: '[::1]:8500' })).toBe('http://[::1]:8500/');
    // A path is a prefix (a Consul behind a reverse proxy).
    expect(url({ CONSUL_HTTP_ADDR: 'https://proxy.test/consul' })).toBe(
      'https://proxy.test/consul/',
    );
  });

  it('prefers --consul-url over CONSUL_HTTP_ADDR', () => {
    expect(url({ CONSUL_HTTP_ADDR: 'a:1' }, 'http://b:2')).toBe('http://b:2/');
  });

  it('refuses what is not an http(s) address as a usage error', () => {
    for (const bad of [
      'unix:///var/run/consul.sock',
      'ftp://x:21',
      'http://user:pw@x:8500',
      'http://x:8500/?dc=1',
      'http://:8500',
      'not a host',
    ]) {
      expect(() => consulTarget({ env: { CONSUL_HTTP_ADDR: bad } }), bad).toThrow(UsageError);
    }
  });

  it('takes the token from CONSUL_HTTP_TOKEN_FILE, then CONSUL_HTTP_TOKEN', () => {
    const file = join(dir, 'token');
    writeFileSync(file, '  from-file\n');
    expect(consulTarget({ env: { CONSUL_HTTP_TOKEN: 'from-env' } }).token).toBe('from-env');
    expect(
      consulTarget({ env: { CONSUL_HTTP_TOKEN: 'from-env', CONSUL_HTTP_TOKEN_FILE: file } }).token,
    ).toBe('from-file');
    expect(consulTarget({ env: {} }).token).toBeUndefined();
    expect(consulTarget({ env: { CONSUL_HTTP_TOKEN: 'x' }, token: 'given' }).token).toBe('given');
    expect(() => consulTarget({ env: { CONSUL_HTTP_TOKEN_FILE: join(dir, 'missing') } })).toThrow(
      UsageError,
    );
    expect(() => consulTarget({ env: { CONSUL_HTTP_TOKEN: 'two words' } })).toThrow(UsageError);
  });

  it('reads CONSUL_CACERT for an https agent only', () => {
    const file = join(dir, 'ca.pem');
    writeFileSync(file, '-----BEGIN CERTIFICATE-----\n');
    expect(
      consulTarget({ env: { CONSUL_HTTP_ADDR: 'https://c:8501', CONSUL_CACERT: file } }).ca,
    ).toBeInstanceOf(Buffer);
    expect(
      consulTarget({ env: { CONSUL_HTTP_ADDR: 'c:8500', CONSUL_CACERT: file } }).ca,
    ).toBeUndefined();
  });
});

describe('serviceDefinition', () => {
  const base = { nodeId: 'node-a', trustDomain: 'org-a.test', fingerprint: 'f'.repeat(64) };

  it('checks the advertised address, or the loopback when the agent is to use its own', () => {
    expect(serviceDefinition({ ...base, address: '192.0.2.1', port: 8443 }).Check).toMatchObject({
      TCP: '192.0.2.1:8443',
    });
    expect(serviceDefinition({ ...base, address: '2001:db8::1', port: 8443 }).Check).toMatchObject({
      TCP: '[2001:db8::1]:8443',
    });
    const own = serviceDefinition({ ...base, address: '', port: 8443 });
    expect(own.Address).toBe('');
    expect(own.Check).toMatchObject({ TCP: '127.0.0.1:8443' });
  });
});
