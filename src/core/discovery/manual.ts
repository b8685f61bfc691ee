import { statSync, type Stats } from 'node:fs';
import { z } from 'zod';
import { messageOf, UsageError } from '../errors.js';
import { readInputFile } from '../identity/files.js';
import { normalizeEndpoint } from '../identity/node-identity.js';
import type { StateStore } from '../state/database.js';
import { listSightings } from '../state/discovery-repository.js';
import type { MethodRunner } from './scanner.js';
import { FINGERPRINT_PATTERN, isNodeId, isTrustDomain, type DiscoveredNode } from './types.js';

/**
 * Manual entries (`nodes add`, and a nodes file's) never expire by TTL: they stay until
 * `nodes remove`. In a scan they carry this nominal TTL so the merged record's cache time is not
 * pinned by them.
 */
const MANUAL_TTL_SECONDS = 24 * 60 * 60;
const MAX_FILE_BYTES = 4 * 1024 * 1024;

const ManualEntry = z
  .object({
    node_id: z.string().refine(isNodeId, 'not a node ID'),
    endpoint: z.string().max(2048),
    trust_domain: z.string().refine(isTrustDomain, 'not a trust domain').nullish(),
    fingerprint: z
      .string()
      // As `nodes add --fingerprint` takes it: any case, colons, a sha256: prefix.
      .transform((value) =>
        value
          .trim()
          .replace(/^sha256:/i, '')
          .replace(/:/g, '')
          .toLowerCase(),
      )
      .refine((value) => FINGERPRINT_PATTERN.test(value), 'not a SHA-256 fingerprint')
      .nullish(),
  })
  .strict();
type ManualEntry = z.infer<typeof ManualEntry>;

/** The most entries a nodes file may list: a bound on what one scan writes to the state file. */
const MAX_NODES = 10_000;

/** docs/guide.md "Manual node lists": `{ "nodes": [...] }`, or the bare list (FEDERATION_NODES). */
const NodesFile = z.union([
  z
    .object({ version: z.literal(1).optional(), nodes: z.array(z.unknown()).max(MAX_NODES) })
    .strict(),
  z.array(z.unknown()).max(MAX_NODES),
]);

export interface ManualSource {
  /** Where the entries came from, for messages: a path, or FEDERATION_NODES. */
  origin: string;
  nodes: DiscoveredNode[];
  /** Entries that were refused, with the reason (the rest are used). */
  rejected: string[];
}

/** Reads a nodes file (JSON). A file that is not JSON at all, or not a list of nodes, is refused. */
export function readNodesFile(path: string): ManualSource {
  const tooLarge = () =>
    new UsageError('NODES_FILE_TOO_LARGE', `${path} is over ${MAX_FILE_BYTES} bytes`, {
      hint: 'split the list, or use DNS-SD or Consul for large federations',
    });
  // A regular file's size is known before reading it: a huge one is refused unread.
  let size: Stats | undefined;
  try {
    size = statSync(path);
  } catch {
    // readInputFile says what is wrong with the path.
  }
  if (size?.isFile() && size.size > MAX_FILE_BYTES) throw tooLarge();
  const bytes = readInputFile(path, 'nodes file');
  if (bytes.length > MAX_FILE_BYTES) throw tooLarge();
  return parseNodesDocument(bytes.toString('utf8'), path);
}

/**
 * Text from the file, made safe for a one-line message: control characters (a newline, or a
 * terminal escape) are shown as \uXXXX, and long text is cut.
 */
function printable(text: string, max = 120): string {
  const cut = text.length > max ? `${text.slice(0, max)}…` : text;
  return cut.replace(
    /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g,
    (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

/**
 * FEDERATION_NODES of the original deployment: a JSON list of node objects, or a comma-separated
 * list of `node-id=https://host:port` pairs.
 */
export function parseFederationNodes(value: string): ManualSource {
  const text = value.trim();
  if (text.startsWith('[') || text.startsWith('{')) {
    return parseNodesDocument(text, 'FEDERATION_NODES');
  }
  const entries = text
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item.length > 0)
    .map((item) => {
      const equals = item.indexOf('=');
      return equals === -1
        ? item
        : { node_id: item.slice(0, equals).trim(), endpoint: item.slice(equals + 1).trim() };
    });
  return entriesToSource(entries, 'FEDERATION_NODES', 'pairs');
}

function parseNodesDocument(text: string, origin: string): ManualSource {
  let document: unknown;
  try {
    // Editors on some systems start a UTF-8 file with a byte-order mark, which JSON.parse refuses.
    document = JSON.parse(text.replace(/^\uFEFF/, ''));
  } catch (error) {
    const reason = printable(messageOf(error), 200);
    throw new UsageError('NODES_FILE_NOT_JSON', `${origin} is not valid JSON (${reason})`, {
      hint: 'see "Manual node lists" in docs/guide.md for the format',
    });
  }
  const parsed = NodesFile.safeParse(document);
  const list = Array.isArray(document) ? document : (document as { nodes?: unknown } | null)?.nodes;
  if (!parsed.success && Array.isArray(list) && list.length > MAX_NODES) {
    throw new UsageError(
      'NODES_FILE_SHAPE',
      `${origin} lists ${list.length} nodes, more than the ${MAX_NODES} a nodes file may`,
      { hint: 'split the list over several files, or keep the nodes this node needs' },
    );
  }
  if (!parsed.success) {
    throw new UsageError('NODES_FILE_SHAPE', `${origin} ${shapeProblem(document)}`, {
      hint: 'expected {"nodes": [{"node_id": ..., "endpoint": "https://host:port"}, ...]}',
    });
  }
  return entriesToSource(Array.isArray(parsed.data) ? parsed.data : parsed.data.nodes, origin);
}

/**
 * Why a JSON document is not a nodes file, said about what it does hold: a document of another
 * version, or with a key of its own next to a good list, is not "not a list of nodes".
 */
function shapeProblem(document: unknown): string {
  if (document === null || typeof document !== 'object' || Array.isArray(document)) {
    return 'is not a list of nodes';
  }
  const fields = document as Record<string, unknown>;
  if (!Array.isArray(fields.nodes)) return 'is not a list of nodes';
  if ('version' in fields && fields.version !== 1) {
    return `is version ${printable(JSON.stringify(fields.version) ?? '?', 40)} of the nodes file format; this sark-fed reads version 1`;
  }
  const unknown = Object.keys(fields).filter((key) => key !== 'version' && key !== 'nodes');
  return `has ${unknown.length === 1 ? 'a key' : 'keys'} a nodes file does not: ${unknown
    .map((key) => `"${printable(key, 40)}"`)
    .join(', ')}`;
}

/** A refused entry's reason, in the file's own terms rather than the schema library's. */
function entryProblem(issue: z.core.$ZodIssue | undefined): string {
  if (issue === undefined) return 'entry: invalid';
  if (issue.code === 'unrecognized_keys') {
    const keys = issue.keys.map((key) => `"${printable(key, 40)}"`).join(', ');
    return `unknown ${issue.keys.length === 1 ? 'key' : 'keys'} ${keys} (node_id, endpoint, trust_domain, fingerprint)`;
  }
  if (issue.path.length === 0 && issue.code === 'invalid_type') {
    return 'not an object {"node_id": ..., "endpoint": "https://host:port"}';
  }
  if (issue.code === 'invalid_type' && issue.input === undefined) {
    return `${issue.path.join('.')}: missing`;
  }
  return `${issue.path.join('.')}: ${issue.message}`;
}

function entriesToSource(
  list: readonly unknown[],
  origin: string,
  form: 'json' | 'pairs' = 'json',
): ManualSource {
  const nodes: DiscoveredNode[] = [];
  const rejected: string[] = [];
  const seen = new Set<string>();
  list.forEach((raw, index) => {
    // The comma-separated form hands over an item without '=' as it was written.
    if (typeof raw === 'string' && form === 'pairs') {
      rejected.push(
        `${origin} entry ${index + 1}: "${printable(withoutCredentials(raw), 80)}" is not <node-id>=https://host:port`,
      );
      return;
    }
    const parsed = ManualEntry.safeParse(raw);
    if (!parsed.success) {
      rejected.push(`${origin} entry ${index + 1}: ${entryProblem(parsed.error.issues[0])}`);
      return;
    }
    const entry: ManualEntry = parsed.data;
    let endpoint: string;
    try {
      endpoint = normalizeEndpoint(entry.endpoint);
    } catch {
      rejected.push(
        `${origin} entry ${index + 1}: endpoint "${printable(withoutCredentials(entry.endpoint))}" is not https://host:port`,
      );
      return;
    }
    if (seen.has(entry.node_id)) {
      rejected.push(
        `${origin} entry ${index + 1}: ${entry.node_id} is listed twice; the first wins`,
      );
      return;
    }
    seen.add(entry.node_id);
    nodes.push({
      nodeId: entry.node_id,
      endpoint,
      trustDomain: entry.trust_domain ?? null,
      fingerprint: entry.fingerprint ?? null,
      // A file's entry is a sighting of its own kind: it never replaces what the operator
      // recorded by hand with `nodes add` (a `manual` sighting), nor is replaced by it.
      source: 'file',
      ttlSeconds: MANUAL_TTL_SECONDS,
    });
  });
  return { origin, nodes, rejected };
}

/**
 * The manual method of a scan: the nodes recorded with `nodes add` (`manual` sightings in the
 * state file), the entries earlier scans saved from nodes files (`file` sightings), and the
 * nodes of `--file` and of FEDERATION_NODES (reported as `file` sightings). Each rejected entry
 * is a skip.
 */
export function manualRunner(options: {
  file?: string | undefined;
  federationNodes?: string | undefined;
  store?: StateStore | undefined;
}): MethodRunner {
  return {
    method: 'manual',
    async run(context, found) {
      const recorded = options.store?.read((db) => listSightings(db)) ?? [];
      for (const sighting of recorded) {
        if (sighting.source !== 'manual' && sighting.source !== 'file') continue;
        found({
          nodeId: sighting.nodeId,
          endpoint: sighting.endpoint,
          trustDomain: sighting.trustDomain,
          fingerprint: sighting.fingerprint,
          source: sighting.source,
          ttlSeconds: MANUAL_TTL_SECONDS,
          seenAt: sighting.seenAt,
        });
      }
      // The file and FEDERATION_NODES come after what the state file holds, so that an edited
      // file wins over the entry an earlier scan saved from it (both are `file` sightings; a
      // `manual` one, recorded by hand, is another kind, which a file never replaces).
      const sources: ManualSource[] = [];
      if (options.file !== undefined) sources.push(readNodesFile(options.file));
      if (options.federationNodes) sources.push(parseFederationNodes(options.federationNodes));
      for (const source of sources) {
        for (const detail of source.rejected) context.skipped(detail);
        for (const node of source.nodes) found(node);
      }
    },
  };
}

/** A rejected endpoint is echoed in messages: never with the password someone put in it. */
function withoutCredentials(endpoint: string): string {
  return endpoint.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@\s]*@/i, '$1***@');
}
