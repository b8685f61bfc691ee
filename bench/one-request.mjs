// The floor for a one-shot `sark-fed invoke`: a bare Node script making the same single mTLS
// request with the same certificate, and printing the answer. Node's start dominates both.
// Usage: node bench/one-request.mjs <url> <cert.pem> <key.pem> <body-json>
import { readFileSync } from 'node:fs';
import { request } from 'node:https';

const [url, certPath, keyPath, body] = process.argv.slice(2);
const target = new URL(url);
const outgoing = request(
  {
    host: target.hostname,
    port: target.port,
    path: target.pathname,
    method: 'POST',
    cert: readFileSync(certPath),
    key: readFileSync(keyPath),
    rejectUnauthorized: false,
    headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
  },
  (response) => {
    const chunks = [];
    response.on('data', (chunk) => chunks.push(chunk));
    response.on('end', () => {
      process.stdout.write(`${Buffer.concat(chunks).toString('utf8')}\n`);
      process.exitCode = response.statusCode === 200 ? 0 : 1;
    });
  },
);
outgoing.on('error', (error) => {
  process.stderr.write(`${error.message}\n`);
  process.exitCode = 1;
});
outgoing.end(body);
