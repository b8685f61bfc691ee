import { z } from 'zod';
import { closest, formatPath, loadConfigFile } from './config-file.js';

/**
 * Who may use what on this node (`serve --policy`, DESIGN §5). Deny by default: a call is allowed
 * only when an allow rule matches its node, principal, resource and capability, and no deny rule
 * matches it too (deny wins, whatever the order of the rules).
 */

const pattern = z
  .string()
  .min(1)
  .max(512)
  .regex(/^[^\s]+$/, 'a pattern has no whitespace');
const patterns = z.array(pattern).min(1, 'list at least one pattern ("*" for any)').max(1000);

const Rule = z
  .object({
    effect: z.enum(['allow', 'deny']),
    description: z.string().max(1024).optional(),
    /** Node IDs, or SPIFFE IDs when the pattern starts with spiffe:// (whole trust domains). */
    nodes: patterns,
    principals: patterns,
    resources: patterns,
    capabilities: patterns,
  })
  .strict();

const RateLimit = z
  .object({
    nodes: patterns,
    rate_limit_per_hour: z.number().int().min(1).max(1e9),
    burst: z.number().int().min(1).max(1e6).optional(),
  })
  .strict();

export const PolicyFile = z
  .object({
    rules: z.array(Rule).max(10_000),
    /** Per-node rate limits; the first entry whose nodes match applies, else serve's defaults. */
    rate_limits: z.array(RateLimit).max(1000).optional(),
  })
  .strict();
export type PolicyFile = z.infer<typeof PolicyFile>;

export interface CallingNode {
  nodeId: string;
  spiffeId: string;
}

export interface Call extends CallingNode {
  principal: string;
  resource: string;
  capability: string;
}

/** A resource or capability pattern of the policy that nothing served here matches. */
export interface UnmatchedPattern {
  /** Where it is in the file: `rules[0].resources[1]`. */
  at: string;
  pattern: string;
  /** The served ID it was likely meant to be, when one is that close (never for a glob). */
  didYouMean: string | null;
}

/** What a node serves, as far as the policy's patterns are concerned. */
export type ServedIds = ReadonlyArray<{ id: string; capabilities: ReadonlyArray<{ id: string }> }>;

export type Decision =
  | { allowed: true; rule: number }
  | { allowed: false; rule: number | null; reason: 'deny-rule' | 'no-allow-rule' };

interface CompiledRule {
  index: number;
  effect: 'allow' | 'deny';
  /** The patterns as written, in the order of their matchers below. */
  written: { resources: readonly string[]; capabilities: readonly string[] };
  nodes: NodeMatcher[];
  principals: Matcher[];
  resources: Matcher[];
  capabilities: Matcher[];
  /** Matches every principal: a deny rule that hides what it covers from catalogs. */
  anyPrincipal: boolean;
}

type Matcher = (value: string) => boolean;
type NodeMatcher = (node: CallingNode) => boolean;

export class Policy {
  private readonly rules: CompiledRule[];
  private readonly limits: Array<{ nodes: NodeMatcher[]; perHour: number; burst?: number }>;

  constructor(
    file: PolicyFile = { rules: [] },
    /** The file the policy was read from, for the daemon's log. */
    readonly source?: string,
  ) {
    this.rules = file.rules.map((rule, index) => ({
      index,
      effect: rule.effect,
      written: { resources: rule.resources, capabilities: rule.capabilities },
      nodes: rule.nodes.map(nodeMatcher),
      principals: rule.principals.map(globMatcher),
      resources: rule.resources.map(globMatcher),
      capabilities: rule.capabilities.map(globMatcher),
      anyPrincipal: rule.principals.includes('*'),
    }));
    this.limits = (file.rate_limits ?? []).map((limit) => ({
      nodes: limit.nodes.map(nodeMatcher),
      perHour: limit.rate_limit_per_hour,
      ...(limit.burst === undefined ? {} : { burst: limit.burst }),
    }));
  }

  /** How many rules of each effect, and rate-limit entries: what `serve --check` reports. */
  get counts(): { allow: number; deny: number; rateLimits: number } {
    const allow = this.rules.filter((rule) => rule.effect === 'allow').length;
    return { allow, deny: this.rules.length - allow, rateLimits: this.limits.length };
  }

  /** True when no rule allows anything: the state without `--policy`, or with `rules: []`. */
  get allowsNothing(): boolean {
    return !this.rules.some((rule) => rule.effect === 'allow');
  }

  decide(call: Call): Decision {
    let allowedBy: number | undefined;
    for (const rule of this.rules) {
      if (!matchesCall(rule, call)) continue;
      if (rule.effect === 'deny') return { allowed: false, rule: rule.index, reason: 'deny-rule' };
      allowedBy ??= rule.index;
    }
    return allowedBy === undefined
      ? { allowed: false, rule: null, reason: 'no-allow-rule' }
      : { allowed: true, rule: allowedBy };
  }

  /**
   * Whether a catalog shows a capability to a node. A node calls on behalf of principals the
   * catalog request does not name, so a capability is shown when some allow rule admits the node
   * for it, for whichever principal, unless a deny rule refuses it for every principal. The
   * invocation itself is still decided per principal.
   */
  mayList(node: CallingNode, resource: string, capability: string): boolean {
    let allowed = false;
    for (const rule of this.rules) {
      if (!matchesTarget(rule, node, resource, capability)) continue;
      if (rule.effect === 'deny' && rule.anyPrincipal) return false;
      if (rule.effect === 'allow') allowed = true;
    }
    return allowed;
  }

  /**
   * The resource and capability patterns that match nothing this node serves: likely typos, and
   * in any case a rule that names only those never matches a call (an allow rule admits no one,
   * a deny rule refuses no one). A capability pattern is checked against the capabilities of the
   * resources its rule matches, and not at all when those are none (reported already).
   */
  unmatchedPatterns(served: ServedIds): UnmatchedPattern[] {
    const unmatched: UnmatchedPattern[] = [];
    const check = (
      rule: CompiledRule,
      field: 'resources' | 'capabilities',
      ids: readonly string[],
    ): void => {
      rule.written[field].forEach((pattern, index) => {
        if (ids.some(rule[field][index] as Matcher)) return;
        unmatched.push({
          at: formatPath(['rules', rule.index, field, index]),
          pattern,
          didYouMean: pattern.includes('*') ? null : (closest(pattern, ids) ?? null),
        });
      });
    };
    for (const rule of this.rules) {
      check(
        rule,
        'resources',
        served.map((resource) => resource.id),
      );
      const resources = served.filter((resource) =>
        rule.resources.some((match) => match(resource.id)),
      );
      if (resources.length === 0) continue;
      const capabilities = new Set(
        resources.flatMap((resource) => resource.capabilities.map((capability) => capability.id)),
      );
      check(rule, 'capabilities', [...capabilities]);
    }
    return unmatched;
  }

  /** The per-node rate limit of the policy file for this node, if any entry names it. */
  rateLimitFor(node: CallingNode): { perHour: number; burst?: number } | undefined {
    const limit = this.limits.find((entry) => entry.nodes.some((match) => match(node)));
    if (!limit) return undefined;
    return { perHour: limit.perHour, ...(limit.burst === undefined ? {} : { burst: limit.burst }) };
  }
}

function matchesTarget(
  rule: CompiledRule,
  node: CallingNode,
  resource: string,
  capability: string,
): boolean {
  return (
    rule.nodes.some((match) => match(node)) &&
    rule.resources.some((match) => match(resource)) &&
    rule.capabilities.some((match) => match(capability))
  );
}

function matchesCall(rule: CompiledRule, call: Call): boolean {
  return (
    matchesTarget(rule, call, call.resource, call.capability) &&
    rule.principals.some((match) => match(call.principal))
  );
}

/** Node patterns starting with spiffe:// are matched against the SPIFFE ID, others the node ID. */
function nodeMatcher(text: string): NodeMatcher {
  const match = globMatcher(text);
  return text.startsWith('spiffe://')
    ? (node) => match(node.spiffeId)
    : (node) => match(node.nodeId);
}

/**
 * `*` stands for any run of characters (none included); everything else matches itself, case
 * and all: `*`, `*@org-a.example`, `mallory@*`, `inventory-*`.
 */
export function globMatcher(text: string): Matcher {
  if (text === '*') return () => true;
  if (!text.includes('*')) return (value) => value === text;
  const source = text
    .split('*')
    .map((part) => part.replace(/[.+?^${}()|[\]\\/]/g, '\\$&'))
    .join('.*');
  const regex = new RegExp(`^${source}$`, 's');
  return (value) => regex.test(value);
}

export async function loadPolicyFile(path: string): Promise<Policy> {
  return new Policy(await loadConfigFile(path, PolicyFile, 'policy', 'BAD_POLICY_FILE'), path);
}
