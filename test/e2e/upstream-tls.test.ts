import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PATHS } from '../../src/core/protocol/constants.js';
import { expectRefusal, tempDir } from '../helpers/cli.js';
import { makeNode, startServe, type RunningServe, type TestNode } from '../helpers/federation.js';
import { send, type Answer } from '../helpers/mtls-request.js';
import { opensslOk } from '../helpers/openssl.js';
import { createCa } from '../helpers/pki.js';

/**
 * HTTPS upstreams on an organization's own PKI (`backend.tls` in the resources file), through a
 * real `serve` process: a private CA instead of the system's, a client certificate for an
 * upstream that asks for one, and the name to check when the URL holds an address. The upstream
 * certificates are made with openssl, as an internal CA's would be, not with sark-fed's pki.
 */

const TD = 'org-s.example';
let dir: string;
let node: TestNode;
let daemon: RunningServe;
let port: number;
const upstreams: Server[] = [];
let plainPort: number;
let mtlsPort: number;
/** The client certificate subject the mTLS upstream saw on its last request. */
let lastClientSubject: string | undefined;

/** A CA and certificates it issued, with openssl: `name.pem` and `name.key` in `folder`. */
function internalPki(folder: string): void {
  mkdirSync(folder, { recursive: true });
  const at = (name: string) => join(folder, name);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  opensslOk([
    'req',
    '-x509',
    ...ec,
    '-keyout',
    at('ca.key'),
    '-out',
    at('ca.pem'),
    '-days',
    '2',
    '-subj',
    '/CN=internal test CA',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  const issue = (name: string, subject: string, extensions: string) => {
    opensslOk([
      'req',
      ...ec,
      '-keyout',
      at(`${name}.key`),
      '-out',
      at(`${name}.csr`),
      '-subj',
      subject,
    ]);
    writeFileSync(at(`${name}.ext`), extensions);
    opensslOk([
      'x509',
      '-req',
      '-in',
      at(`${name}.csr`),
      '-CA',
      at('ca.pem'),
      '-CAkey',
      at('ca.key'),
      '-CAcreateserial',
      '-out',
      at(`${name}.pem`),
      '-days',
      '2',
      '-extfile',
      at(`${name}.ext`),
    ]);
  };
  // Named for a DNS name only: reached at 127.0.0.1, it needs server_name.
  issue(
    'server',
    '/CN=inventory.internal',
    'subjectAltName=DNS:inventory.internal\nextendedKeyUsage=serverAuth\n',
  );
  issue('client', '/CN=sark-fed node-s', 'extendedKeyUsage=clientAuth\n');
}

function listen(server: Server): Promise<number> {
  upstreams.push(server);
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)),
  );
}

function invoke(resource: string): Promise<Answer> {
  return send(
    { certPem: readFileSync(node.certPath, 'utf8'), keyPem: readFileSync(node.keyPath, 'utf8') },
    port,
    PATHS.invoke,
    {
      resource_id: resource,
      capability_id: 'get',
      principal_id: 'ops@org-s.example',
      arguments: { n: 1 },
    },
  );
}

function resourcesYaml(entries: Array<[string, string, string?]>): string {
  return [
    'resources:',
    ...entries.flatMap(([id, url, tls]) => [
      `  - id: ${id}`,
      '    capabilities:',
      '      - id: get',
      '        backend:',
      '          type: http',
      `          url: ${url}`,
      '          timeout: 5s',
      ...(tls ? [`          tls: ${tls}`] : []),
    ]),
    '',
  ].join('\n');
}

beforeAll(async () => {
  dir = tempDir('sark-fed-upstream-tls-');
  internalPki(join(dir, 'pki'));
  const read = (name: string) => readFileSync(join(dir, 'pki', name));
  const answer = (body: unknown) => JSON.stringify(body);
  plainPort = await listen(
    createServer({ cert: read('server.pem'), key: read('server.key') }, (request, response) => {
      response.setHeader('content-type', 'application/json');
      response.end(answer({ upstream: 'plain', path: request.url }));
    }),
  );
  mtlsPort = await listen(
    createServer(
      {
        cert: read('server.pem'),
        key: read('server.key'),
        ca: read('ca.pem'),
        requestCert: true,
        rejectUnauthorized: true,
      },
      (request, response) => {
        const peer = (request.socket as TLSSocket).getPeerCertificate();
        lastClientSubject = peer.subject?.CN as string | undefined;
        response.setHeader('content-type', 'application/json');
        response.end(answer({ upstream: 'mtls' }));
      },
    ),
  );
  const ca = await createCa(join(dir, 'ca'), ['--trust-domain', TD]);
  node = await makeNode(dir, ca.dir, 'node-s', TD);
  const resources = join(dir, 'etc', 'resources.yaml');
  mkdirSync(join(dir, 'etc'), { recursive: true });
  // Relative paths: read from the resources file's folder, wherever serve runs.
  writeFileSync(
    resources,
    resourcesYaml([
      ['system-cas', `https://127.0.0.1:${plainPort}/a`],
      ['no-name', `https://127.0.0.1:${plainPort}/a`, '{ ca: ../pki/ca.pem }'],
      [
        'private-ca',
        `https://127.0.0.1:${plainPort}/b`,
        '{ ca: ../pki/ca.pem, server_name: inventory.internal }',
      ],
      [
        'mtls-no-cert',
        `https://127.0.0.1:${mtlsPort}/`,
        '{ ca: ../pki/ca.pem, server_name: inventory.internal }',
      ],
      [
        'mtls',
        `https://127.0.0.1:${mtlsPort}/`,
        '{ ca: ../pki/ca.pem, server_name: inventory.internal, cert: ../pki/client.pem, key: ../pki/client.key }',
      ],
    ]),
  );
  const policy = join(dir, 'etc', 'policy.yaml');
  writeFileSync(
    policy,
    'rules:\n  - { effect: allow, nodes: [node-s], principals: ["*"], resources: ["*"], capabilities: ["*"] }\n',
  );
  daemon = await startServe(node, [
    '--listen',
    '127.0.0.1:0',
    '--resources',
    resources,
    '--policy',
    policy,
  ]);
  port = Number((await daemon.waitForLog((entry) => entry.msg === 'listening')).port);
}, 60_000);

afterAll(async () => {
  await daemon?.stop();
  await Promise.all(upstreams.map((server) => new Promise((resolve) => server.close(resolve))));
});

describe('HTTPS upstreams with backend.tls', () => {
  it('checks the upstream against the system CAs without tls, and the named CA and name with it', async () => {
    const systemCas = await invoke('system-cas');
    expect(systemCas.status).toBe(502);
    expect(
      await daemon.waitForLog(
        (entry) => entry.msg === 'backend failed' && entry.resource === 'system-cas',
      ),
    ).toMatchObject({
      detail: expect.stringMatching(/certificate/i),
    });
    // The private CA, but the URL's address is not a name the certificate holds.
    const noName = await invoke('no-name');
    expect(noName.status).toBe(502);
    expect(
      await daemon.waitForLog(
        (entry) => entry.msg === 'backend failed' && entry.resource === 'no-name',
      ),
    ).toMatchObject({
      detail: expect.stringMatching(
        /ERR_TLS_CERT_ALTNAME_INVALID|IP: 127\.0\.0\.1 is not in the cert's list/,
      ),
    });
    const ok = await invoke('private-ca');
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
    expect(ok.body.result).toEqual({ upstream: 'plain', path: '/b' });
  });

  it('presents the client certificate an upstream asks for', async () => {
    expect((await invoke('mtls-no-cert')).status).toBe(502);
    const ok = await invoke('mtls');
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
    expect(ok.body.result).toEqual({ upstream: 'mtls' });
    expect(lastClientSubject).toBe('sark-fed node-s');
  });

  it.each([
    [
      'tls on an http:// URL',
      `http://127.0.0.1:9/x`,
      '{ ca: ../pki/ca.pem }',
      /\.backend\.tls: tls applies to an https:\/\/ URL only$/,
    ],
    [
      'a certificate without its key',
      `https://127.0.0.1:9/x`,
      '{ cert: ../pki/client.pem }',
      /\.backend\.tls\.key: a client certificate needs its key/,
    ],
    [
      'a missing CA file',
      `https://127.0.0.1:9/x`,
      '{ ca: ../pki/nope.pem }',
      /\.backend\.tls\.ca: cannot read .*pki\/nope\.pem \(ENOENT\): a relative path is read from the resources file's folder$/,
    ],
    [
      'a CA file that is a key',
      `https://127.0.0.1:9/x`,
      '{ ca: ../pki/ca.key }',
      /\.backend\.tls\.ca: \.\.\/pki\/ca\.key holds no PEM certificate$/,
    ],
    [
      "another certificate's key",
      `https://127.0.0.1:9/x`,
      '{ cert: ../pki/client.pem, key: ../pki/server.key }',
      /\.backend\.tls\.key: \.\.\/pki\/server\.key is not the key of \.\.\/pki\/client\.pem$/,
    ],
    [
      'an unknown key',
      `https://127.0.0.1:9/x`,
      '{ ca: ../pki/ca.pem, insecure: true }',
      /\.backend\.tls: unknown key "insecure"/,
    ],
  ])('refuses %s: exit 2 before listening', async (_name, url, tls, message) => {
    const path = join(dir, 'etc', `bad-${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(path, resourcesYaml([['bad', url, tls]]));
    expectRefusal(await node.cli(['serve', '--listen', '127.0.0.1:0', '--resources', path]), 2, {
      message: new RegExp(
        `^invalid resources file .*: resources\\[0\\]\\.capabilities\\[0\\]${message.source}`,
      ),
    });
  });
});
