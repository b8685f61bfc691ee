import { TrustError } from '../../core/errors.js';
import type { NodeIdentity } from '../../core/identity/node-identity.js';
import { loadNodeKey } from '../../core/identity/keys.js';
import { count } from '../../core/plural.js';
import type { Policy } from '../../node/policy.js';
import type { ResourceCatalog } from '../../node/resources.js';
import { ServedConfig, servedSummary, servedWarnings } from '../../node/served-files.js';
import type { CommandContext } from '../context.js';

const DAY_MS = 24 * 60 * 60 * 1000;

/** The `serve --check` JSON document (docs/json-output.md#serve---check). */
export interface ServeCheckReport {
  ok: true;
  nodeId: string;
  notAfter: string;
  expiresInDays: number;
  resources: { file: string; served: Array<{ id: string; capabilities: string[] }> } | null;
  policy: { file: string; allowRules: number; denyRules: number; rateLimits: number } | null;
  warnings: Array<{
    code: string;
    message: string;
    hint: string;
    unknown?: Array<{ at: string; id: string; didYouMean: string | null }>;
  }>;
}

/**
 * `serve --check`: what `serve` checks before it listens (the files have been read by the
 * caller, with serve's own refusals), plus the key and the certificate's validity, then what
 * would be served and the warnings the daemon would log. Nothing is bound and nothing written,
 * so it can run beside the daemon it is about to reload, on the files it is about to save.
 */
export function checkServe(
  context: CommandContext,
  identity: NodeIdentity,
  files: {
    resources: { path: string; catalog: ResourceCatalog } | undefined;
    policy: { path: string; policy: Policy } | undefined;
  },
): void {
  const now = context.now();
  if (now > new Date(identity.notAfter)) {
    throw new TrustError(
      'CERT_EXPIRED',
      `this node's certificate expired at ${identity.notAfter}`,
      {
        hint: 'issue a new certificate and run `sark-fed init` again',
      },
    );
  }
  loadNodeKey(identity);
  const served = new ServedConfig(files.resources?.catalog, files.policy?.policy);
  const counts = files.policy?.policy.counts;
  const report: ServeCheckReport = {
    ok: true,
    nodeId: identity.nodeId,
    notAfter: identity.notAfter,
    expiresInDays: Math.floor((new Date(identity.notAfter).getTime() - now.getTime()) / DAY_MS),
    resources: files.resources
      ? { file: files.resources.path, served: servedSummary(served.catalog) }
      : null,
    policy:
      files.policy && counts
        ? {
            file: files.policy.path,
            allowRules: counts.allow,
            denyRules: counts.deny,
            rateLimits: counts.rateLimits,
          }
        : null,
    warnings: servedWarnings(served).map((warning) => ({
      code: warning.code,
      message: warning.message,
      hint: warning.fields.hint,
      ...(warning.fields.unknown
        ? {
            unknown: warning.fields.unknown.map((entry) => ({
              at: entry.at,
              id: entry.id,
              didYouMean: entry.did_you_mean,
            })),
          }
        : {}),
    })),
  };
  const { output } = context;
  if (output.json) {
    output.writeJson(report);
    return;
  }
  output.fields([
    ['node', identity.nodeId],
    [
      'certificate',
      `valid until ${identity.notAfter} (${count(report.expiresInDays, 'day')} left)`,
    ],
    [
      'resources',
      report.resources
        ? `${report.resources.file}: ${
            report.resources.served.length === 0
              ? 'none'
              : report.resources.served
                  .map((resource) => `${resource.id} (${resource.capabilities.join(', ')})`)
                  .join(', ')
          }`
        : 'none (no --resources)',
    ],
    [
      'policy',
      report.policy
        ? `${report.policy.file}: ${count(report.policy.allowRules, 'allow rule')}, ${count(report.policy.denyRules, 'deny rule')}, ${count(report.policy.rateLimits, 'rate limit')}`
        : 'none (no --policy: every invocation denied)',
    ],
  ]);
  for (const warning of report.warnings) {
    output.warn(`${warning.message}\nhint: ${warning.hint}`);
  }
  output.success(
    report.warnings.length === 0
      ? 'serve would start with these files'
      : `serve would start with these files (${count(report.warnings.length, 'warning')})`,
  );
}
