// The floor of the invoke throughput benchmark: the least a server can do per call and still
// give what DESIGN §5 and §7 require of every invoke answer, written as plainly as possible on
// one thread. Over bench/bare-server.mjs's echo (same certificate and TLS settings) it adds:
//   - the caller's certificate, looked up by fingerprint once per connection (who is calling);
//   - the request's and the result's SHA-256, a receipt over them signed with the node's key;
//   - an audit row, hash-chained to the previous one, in the node's real audit_events table (all
//     its indexes), committed with synchronous=FULL before the answer goes: every request that
//     arrived in one turn of the event loop shares one commit.
// No policy, rate limit, schema checks, canonical JSON, logging or metrics: whatever the daemon
// spends beyond this floor is sark-fed's own.
// A fourth argument leaves one of the two mandatory pieces out, so that the benchmark can show
// what each costs on its own: `receipt` signs the receipt but writes no audit row, `audit`
// writes the row but does not sign (the receipt's signature is a fixed string). Default `full`.
// Usage: node bench/floor-server.mjs <cert.pem> <key.pem> <state.db> [full|receipt|audit]
//   → prints its port.
import { createHash, createPrivateKey, randomBytes, sign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import { serverTlsOptions } from './server-tls.mjs';
import { createRequire } from 'node:module';

const Database = createRequire(import.meta.url)('better-sqlite3');

/** Time-ordered IDs as the daemon's (src/core/protocol/ids.ts), without its in-millisecond order. */
function newId() {
  const bytes = randomBytes(16);
  bytes.writeUIntBE(Date.now(), 0, 6);
  bytes[6] = 0x70 | (bytes[6] & 0x0f);
  bytes[8] = 0x80 | (bytes[8] & 0x3f);
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

const [certPath, keyPath, statePath, mode = 'full'] = process.argv.slice(2);
if (!['full', 'receipt', 'audit'].includes(mode)) throw new Error(`unknown mode ${mode}`);
const signs = mode !== 'audit';
const audits = mode !== 'receipt';
const key = createPrivateKey(readFileSync(keyPath));
const db = new Database(statePath);
db.pragma('journal_mode = WAL');
db.pragma('synchronous = FULL');
const lastHash = db.prepare('SELECT hash FROM audit_events ORDER BY seq DESC LIMIT 1').pluck();
const insert = db.prepare(
  `INSERT INTO audit_events (event_id, correlation_id, time, direction, source_node, target_node,
     principal, resource, capability, outcome, status_code, error_code, duration_us,
     request_sha256, request_size, result_sha256, result_size, receipt, prev_hash, hash)
   VALUES (@event_id, @correlation_id, @time, 'inbound', @source_node, 'node-b', @principal,
     @resource, @capability, 'success', 200, NULL, 0, @request_sha256, @request_size,
     @result_sha256, @result_size, @receipt, @prev_hash, @hash)`,
);
const sha256 = (data) => createHash('sha256').update(data).digest('hex');
const commit = db.transaction((rows) => {
  let previous = lastHash.get() ?? '0'.repeat(64);
  for (const row of rows) {
    row.prev_hash = previous;
    row.hash = sha256(previous + JSON.stringify(row));
    insert.run(row);
    previous = row.hash;
  }
});

let queued = [];
function commitQueued() {
  const batch = queued;
  queued = [];
  commit(batch.map((item) => item.row));
  for (const item of batch) item.answer();
}

const callers = new WeakMap();
const server = createServer(serverTlsOptions(certPath, keyPath), (request, response) => {
  const chunks = [];
  request.on('data', (chunk) => chunks.push(chunk));
  request.on('end', () => {
    // getPeerCertificate() builds a whole object: once per connection, as the daemon does.
    let caller = callers.get(request.socket);
    if (caller === undefined) {
      const fingerprint = request.socket.getPeerCertificate().fingerprint256;
      caller = `caller-${fingerprint.slice(0, 8)}`;
      callers.set(request.socket, caller);
    }
    const call = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    const argumentsJson = JSON.stringify(call.arguments ?? null);
    const resultJson = argumentsJson; // the echo
    const correlationId = request.headers['x-correlation-id'] ?? newId();
    const claims = {
      correlation_id: correlationId,
      source: caller,
      target: 'node-b',
      principal: call.principal_id,
      resource: call.resource_id,
      capability: call.capability_id,
      request_sha256: sha256(argumentsJson),
      outcome: 'success',
      result_sha256: sha256(resultJson),
      timestamp: new Date().toISOString(),
    };
    const receipt = {
      ...claims,
      signature: signs
        ? sign('sha256', Buffer.from(JSON.stringify(claims)), key).toString('base64url')
        : 'unsigned',
    };
    const body = JSON.stringify({
      correlation_id: correlationId,
      success: true,
      result: call.arguments ?? null,
      receipt,
    });
    queued.push({
      row: {
        event_id: newId(),
        correlation_id: correlationId,
        time: claims.timestamp,
        source_node: caller,
        principal: claims.principal,
        resource: claims.resource,
        capability: claims.capability,
        request_sha256: claims.request_sha256,
        request_size: Buffer.byteLength(argumentsJson),
        result_sha256: claims.result_sha256,
        result_size: Buffer.byteLength(resultJson),
        receipt: JSON.stringify(receipt),
      },
      answer: () => {
        response.writeHead(200, {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
          'x-correlation-id': correlationId,
        });
        response.end(body);
      },
    });
    if (!audits) {
      queued.pop().answer();
      return;
    }
    if (queued.length === 1) setImmediate(commitQueued);
  });
});
server.listen(0, '127.0.0.1', () => process.stdout.write(`${server.address().port}\n`));
// Ends with its parent: the benchmark closes stdin or sends SIGTERM.
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0));
