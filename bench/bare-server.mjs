// The baseline server of the trust benchmark: Node's https with the daemon's certificate and TLS
// settings (client certificate requested, TLS 1.2+, ECDHE AEAD suites), and no application work.
// It answers every GET with a small info-like JSON and every POST with its own body (an echo).
// Usage: node bench/bare-server.mjs <cert.pem> <key.pem> → prints the port it listens on.
import { createServer } from 'node:https';
import { serverTlsOptions } from './server-tls.mjs';

const [certPath, keyPath] = process.argv.slice(2);
const info = JSON.stringify({
  node_id: 'bare',
  trust_domain: 'bare.example',
  spiffe_id: 'spiffe://bare.example/sark/node/bare',
  version: '0.0.0',
  api_version: 'v2',
  fingerprint: '0'.repeat(64),
  endpoint: null,
});

const server = createServer(serverTlsOptions(certPath, keyPath), (request, response) => {
  const chunks = [];
  request.on('data', (chunk) => chunks.push(chunk));
  request.on('end', () => {
    // An echo: the invoke benchmark's baseline answers with what it was sent.
    const body = request.method === 'GET' ? info : Buffer.concat(chunks);
    response.writeHead(200, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
    });
    response.end(body);
  });
});
server.listen(0, '127.0.0.1', () => process.stdout.write(`${server.address().port}\n`));
// Ends with its parent: the benchmark closes stdin or sends SIGTERM.
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0));
