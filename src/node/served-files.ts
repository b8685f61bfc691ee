import { stat } from 'node:fs/promises';
import { messageOf } from '../core/errors.js';
import type { Logger } from './logger.js';
import { loadPolicyFile, Policy } from './policy.js';
import { loadResourcesFile, ResourceCatalog } from './resources.js';

/**
 * What the daemon serves and to whom: the catalog of `serve --resources` and the policy of
 * `serve --policy`. One object the request handlers read on every call, whose two fields the
 * reload below replaces whole: a call that already found its capability finishes with it, the
 * next one sees the new files.
 */
export class ServedConfig {
  /** The policy as given; `undefined` without `--policy` (every invocation denied). */
  declaredPolicy: Policy | undefined;
  policy: Policy;

  constructor(
    public catalog: ResourceCatalog = new ResourceCatalog(),
    policy?: Policy,
  ) {
    this.declaredPolicy = policy;
    this.policy = policy ?? new Policy();
  }

  setPolicy(policy: Policy): void {
    this.declaredPolicy = policy;
    this.policy = policy;
  }
}

export type ServedFileKind = 'resources' | 'policy';

/** Each served resource's ID and its capabilities' IDs: the daemon's `serving resources` line. */
export function servedSummary(
  catalog: ResourceCatalog,
): Array<{ id: string; capabilities: string[] }> {
  return catalog.resources.map((resource) => ({
    id: resource.id,
    capabilities: resource.capabilities.map((capability) => capability.id),
  }));
}

export interface ServedWarning {
  code: 'NO_POLICY' | 'POLICY_ALLOWS_NOTHING' | 'POLICY_UNKNOWN_IDS';
  message: string;
  /** The log line's fields: `hint` always, `policy` (the file) and `unknown` where they apply. */
  fields: {
    hint: string;
    policy?: string | null;
    unknown?: Array<{ at: string; id: string; did_you_mean: string | null }>;
  };
}

/**
 * What is valid but almost certainly not meant, in a pair of served files: given by the daemon
 * at start and after each reload, and by `serve --check`.
 */
export function servedWarnings(served: ServedConfig): ServedWarning[] {
  const { catalog, declaredPolicy: policy } = served;
  // A node that serves nothing (trust and discovery only) has nothing to warn about.
  if (catalog.resources.length === 0) return [];
  const warnings: ServedWarning[] = [];
  // Told apart, because the remedies differ: a forgotten --policy, or a file without an allow
  // rule (`rules: []`, deny rules only), which --policy again would not mend.
  if (policy === undefined) {
    warnings.push({
      code: 'NO_POLICY',
      message: 'no policy given: every invocation will be denied',
      fields: {
        hint: 'pass serve --policy <file> with allow rules (docs/resources.md#the-policy-file)',
      },
    });
  } else if (policy.allowsNothing) {
    warnings.push({
      code: 'POLICY_ALLOWS_NOTHING',
      message: 'the policy has no allow rule: every invocation will be denied',
      fields: {
        policy: policy.source ?? null,
        hint: 'add an allow rule to the policy file and save it: serve re-reads it (docs/resources.md#the-policy-file)',
      },
    });
  }
  // A misspelt ID in a rule fails silently otherwise: the allow rule admits no one, the deny
  // rule refuses no one, and the file is valid.
  const unmatched = policy?.unmatchedPatterns(catalog.resources) ?? [];
  if (unmatched.length > 0) {
    const guesses = unmatched
      .filter((entry) => entry.didYouMean !== null)
      .map((entry) => `${JSON.stringify(entry.didYouMean)} for ${JSON.stringify(entry.pattern)}`);
    warnings.push({
      code: 'POLICY_UNKNOWN_IDS',
      message: 'the policy names resources or capabilities this node does not serve',
      fields: {
        policy: policy?.source ?? null,
        unknown: unmatched.map((entry) => ({
          at: entry.at,
          id: entry.pattern,
          did_you_mean: entry.didYouMean,
        })),
        hint: `${guesses.length > 0 ? `did you mean ${guesses.join(', ')}? ` : ''}rules never match through those IDs: correct the policy file (or serve them in the resources file) and save it: serve re-reads it (docs/resources.md#the-policy-file)`,
      },
    });
  }
  return warnings;
}

/**
 * What identifies one version of a file without reading it: a rename over it (an editor's
 * atomic save, a Kubernetes ConfigMap's symlink swap) changes the inode, an edit in place the
 * size or the times. `stat` follows symlinks, so the file a symlink points to is the one watched.
 */
export async function fileSignature(path: string): Promise<string> {
  try {
    const info = await stat(path, { bigint: true });
    const kind = info.isFile() ? 'file' : 'other';
    return `${kind}:${info.dev}:${info.ino}:${info.size}:${info.mtimeNs}:${info.ctimeNs}`;
  } catch (error) {
    return `missing:${(error as NodeJS.ErrnoException).code ?? messageOf(error)}`;
  }
}

export interface WatchedFile {
  path: string;
  /** The signature taken before the daemon read the file at start (see fileSignature). */
  signature: string;
}

export interface ReloadOptions {
  served: ServedConfig;
  files: Partial<Record<ServedFileKind, WatchedFile>>;
  /** For `${NAME}` in resources headers: the environment the daemon started with. */
  env: NodeJS.ProcessEnv;
  logger: Logger;
  /** How often the files are looked at; a change is taken once it has held for one interval. */
  intervalMs: number;
  /** After the new files took effect (the daemon republishes its local catalog). */
  onReloaded(kinds: ServedFileKind[]): void;
  /** Every reload attempt's outcome, for metrics. */
  onOutcome?(kind: ServedFileKind, ok: boolean): void;
}

export const DEFAULT_RELOAD_INTERVAL_MS = 1_000;

/**
 * Re-reads `--resources` and `--policy` when they change, so that an operator who lets a new
 * peer in edits the policy and saves it, without a restart that would drop calls in flight and
 * withdraw the node's announcements. A file that does not load (a typo, a half-saved file, a
 * deleted one) is refused with one error line, and the daemon goes on serving what it served:
 * it never falls back to an empty policy or catalog.
 *
 * Polled rather than watched with fs.watch: inotify loses a file replaced by rename, does not
 * follow symlinks swapped underneath, and is absent on some network filesystems; a stat a second
 * is nothing to the daemon. A new signature is acted on only once it has stayed the same for one
 * interval, so that a file caught halfway through being written is not loaded as it stood.
 */
export function watchServedFiles(options: ReloadOptions): { close(): void } {
  const trackers = (Object.entries(options.files) as Array<[ServedFileKind, WatchedFile]>).map(
    ([kind, file]) => ({ kind, path: file.path, applied: file.signature, seen: file.signature }),
  );
  let busy = false;
  let closed = false;

  const tick = async () => {
    const due: typeof trackers = [];
    for (const tracker of trackers) {
      const signature = await fileSignature(tracker.path);
      const settled = signature === tracker.seen;
      tracker.seen = signature;
      if (signature !== tracker.applied && settled) due.push(tracker);
    }
    const loaded: Array<{ kind: ServedFileKind; apply(): void }> = [];
    for (const tracker of due) {
      // Marked as dealt with whatever the outcome: a file that failed is not tried again (nor
      // logged again) until it changes once more.
      const signature = tracker.seen;
      tracker.applied = signature;
      try {
        loaded.push(await load(tracker.kind, tracker.path, signature, options.env));
        options.onOutcome?.(tracker.kind, true);
      } catch (error) {
        options.onOutcome?.(tracker.kind, false);
        options.logger.error(`${tracker.kind} file not reloaded: still serving the previous one`, {
          file: tracker.path,
          error: messageOf(error),
          ...hintOf(error),
        });
      }
    }
    if (closed || loaded.length === 0) return;
    // Both files of one tick take effect together: a new resource and the rule that opens it,
    // saved a moment apart, never show a state in between to the warnings below.
    for (const file of loaded) file.apply();
    const kinds = loaded.map((file) => file.kind);
    options.onReloaded(kinds);
  };

  const load = async (
    kind: ServedFileKind,
    path: string,
    signature: string,
    env: NodeJS.ProcessEnv,
  ): Promise<{ kind: ServedFileKind; apply(): void }> => {
    // Reading a FIFO or a device would block the event loop, or never end.
    if (!signature.startsWith('file:')) {
      throw new Error(
        signature.startsWith('missing:')
          ? `cannot read the ${kind} file ${path} (${signature.slice('missing:'.length)})`
          : `${path} is not a regular file`,
      );
    }
    if (kind === 'resources') {
      const catalog = await loadResourcesFile(path, env);
      return {
        kind,
        apply: () => {
          options.served.catalog = catalog;
        },
      };
    }
    const policy = await loadPolicyFile(path);
    return { kind, apply: () => options.served.setPolicy(policy) };
  };

  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    tick()
      .catch((error: unknown) => {
        options.logger.error('checking the served files failed', { error: messageOf(error) });
      })
      .finally(() => {
        busy = false;
      });
  }, options.intervalMs);
  // The daemon's sockets keep the process alive, not this timer.
  timer.unref();
  return {
    close() {
      closed = true;
      clearInterval(timer);
    },
  };
}

function hintOf(error: unknown): { hint?: string } {
  const hint = (error as { hint?: unknown }).hint;
  return typeof hint === 'string' ? { hint } : {};
}
