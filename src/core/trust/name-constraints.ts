/**
 * Name constraints (RFC 5280 §4.2.1.10) for dNSName, iPAddress, rfc822Name, URI and
 * directoryName. A constraint of any other form (otherName, x400Address, …) cannot be processed:
 * it refuses the chain as soon as a name of that form appears below it, and is ignored otherwise.
 *
 * Wildcard DNS names are checked defensively (CVE-2025-61727): "*.example.com" is refused by an
 * excluded subtree that any name it could match falls in, and is permitted only when every name it
 * could match is.
 */
import type {
  DistinguishedName,
  GeneralName,
  NameConstraints,
  ParsedCertificate,
} from './certificate.js';
import { rdnKey } from './certificate.js';
import { formatIp, isValidDnsName, parseMailbox } from './names.js';
import { OID } from './oids.js';
import { problem, type Problem } from './problem.js';

/** Hard cap on name-versus-constraint comparisons for one chain (pathological certificates). */
export const MAX_CONSTRAINT_COMPARISONS = 1 << 16;

type Form = 'dns' | 'ip' | 'email' | 'uri' | 'dn' | 'other';

interface CompiledConstraint {
  form: Form;
  /** For 'other': the GeneralName form; else the constraint's text, for messages. */
  label: string;
  matches: (name: GeneralName) => boolean;
}

interface CompiledConstraints {
  permitted: CompiledConstraint[];
  excluded: CompiledConstraint[];
  /** Forms that have at least one permitted subtree. */
  permittedForms: Set<Form>;
}

const compiledCache = new WeakMap<NameConstraints, CompiledConstraints | Problem>();

/** Validates and compiles a certificate's constraints; a problem when one is malformed. */
export function compileNameConstraints(
  constraints: NameConstraints,
): CompiledConstraints | Problem {
  const cached = compiledCache.get(constraints);
  if (cached) return cached;
  let result: CompiledConstraints | Problem;
  try {
    const permitted = (constraints.permitted ?? []).map((subtree) => compile(subtree.base));
    const excluded = (constraints.excluded ?? []).map((subtree) => compile(subtree.base));
    result = { permitted, excluded, permittedForms: new Set(permitted.map((c) => c.form)) };
  } catch (error) {
    result = problem(
      'BAD_NAME_CONSTRAINTS',
      error instanceof Error ? error.message : String(error),
    );
  }
  compiledCache.set(constraints, result);
  return result;
}

function compile(base: GeneralName): CompiledConstraint {
  switch (base.type) {
    case 'dns': {
      const constraint = base.value.toLowerCase();
      if (constraint !== '' && !isValidDnsName(constraint)) {
        throw new Error(`malformed dNSName constraint "${base.value}"`);
      }
      return {
        form: 'dns',
        label: base.value,
        matches: (name) => name.type === 'dns' && dnsWithin(name.value.toLowerCase(), constraint),
      };
    }
    case 'ip': {
      const length = base.bytes.length;
      if (length !== 8 && length !== 32)
        throw new Error('malformed iPAddress constraint (not address and mask)');
      const size = length / 2;
      const address = base.bytes.subarray(0, size);
      const mask = base.bytes.subarray(size);
      if (!isContiguousMask(mask))
        throw new Error('malformed iPAddress constraint (mask not contiguous)');
      return {
        form: 'ip',
        label: `${formatIp(address)}/${prefixLength(mask)}`,
        matches: (name) => {
          if (name.type !== 'ip' || name.bytes.length !== size) return false;
          for (let i = 0; i < size; i++) {
            if ((((name.bytes[i] as number) ^ (address[i] as number)) & (mask[i] as number)) !== 0)
              return false;
          }
          return true;
        },
      };
    }
    case 'email': {
      const constraint = base.value;
      let matcher: (mailbox: { local: string; host: string }) => boolean;
      if (constraint.includes('@')) {
        const exact = parseMailbox(constraint);
        if (!exact) throw new Error(`malformed rfc822Name constraint "${constraint}"`);
        const host = exact.host.toLowerCase();
        matcher = (m) => m.local === exact.local && m.host.toLowerCase() === host;
      } else if (constraint.startsWith('.')) {
        const domain = constraint.slice(1).toLowerCase();
        if (!isValidDnsName(domain))
          throw new Error(`malformed rfc822Name constraint "${constraint}"`);
        matcher = (m) => m.host.toLowerCase().endsWith(`.${domain}`);
      } else {
        const host = constraint.toLowerCase();
        if (!isValidDnsName(host))
          throw new Error(`malformed rfc822Name constraint "${constraint}"`);
        matcher = (m) => m.host.toLowerCase() === host;
      }
      return {
        form: 'email',
        label: constraint,
        matches: (name) => {
          if (name.type !== 'email') return false;
          const mailbox = parseMailbox(name.value);
          return mailbox !== undefined && matcher(mailbox);
        },
      };
    }
    case 'uri': {
      const constraint = base.value.toLowerCase();
      const domain = constraint.startsWith('.') ? constraint.slice(1) : constraint;
      if (!isValidDnsName(domain)) throw new Error(`malformed URI constraint "${base.value}"`);
      return {
        form: 'uri',
        label: base.value,
        matches: (name) => {
          if (name.type !== 'uri') return false;
          const host = uriHost(name.value);
          if (host === undefined) return false;
          return constraint.startsWith('.') ? host.endsWith(constraint) : host === constraint;
        },
      };
    }
    case 'dn': {
      const constraint = base.name.rdns.map(rdnKey);
      return {
        form: 'dn',
        label: 'directoryName',
        matches: (name) => {
          if (name.type !== 'dn' || name.name.rdns.length < constraint.length) return false;
          return constraint.every((key, i) => rdnKey(name.name.rdns[i] ?? []) === key);
        },
      };
    }
    case 'other':
      return { form: 'other', label: base.form, matches: () => false };
  }
}

function dnsWithin(name: string, constraint: string): boolean {
  if (constraint === '') return true;
  return name === constraint || name.endsWith(`.${constraint}`);
}

function isContiguousMask(mask: Uint8Array): boolean {
  let seenZero = false;
  for (const byte of mask) {
    for (let bit = 7; bit >= 0; bit--) {
      const set = (byte >> bit) & 1;
      if (set && seenZero) return false;
      if (!set) seenZero = true;
    }
  }
  return true;
}

function prefixLength(mask: Uint8Array): number {
  let count = 0;
  for (const byte of mask) for (let bit = 7; bit >= 0; bit--) count += (byte >> bit) & 1;
  return count;
}

/** The lowercased host of an absolute URI with an authority, or undefined. */
export function uriHost(uri: string): string | undefined {
  const match = /^[a-z][a-z0-9+.-]*:\/\/([^/?#]*)/i.exec(uri);
  if (!match) return undefined;
  let authority = match[1] as string;
  const at = authority.lastIndexOf('@');
  if (at !== -1) authority = authority.slice(at + 1);
  if (authority.startsWith('[')) return undefined;
  const host = authority.replace(/:\d*$/, '').toLowerCase();
  return host === '' ? undefined : host;
}

function formOf(name: GeneralName): Form {
  return name.type;
}

/** The names of a certificate that name constraints apply to: subject, its emails, and SANs. */
export function constrainedNames(certificate: ParsedCertificate): GeneralName[] {
  const names: GeneralName[] = [];
  const subject: DistinguishedName = certificate.subject;
  if (subject.rdns.length > 0) {
    names.push({ type: 'dn', name: subject });
    for (const rdn of subject.rdns) {
      for (const attribute of rdn) {
        if (attribute.oid === OID.emailAddress && attribute.text !== undefined) {
          names.push({ type: 'email', value: attribute.text });
        }
      }
    }
  }
  for (const name of certificate.subjectAltNames ?? []) names.push(name);
  return names;
}

/** Budget shared by all checks of one path. */
export interface ComparisonBudget {
  remaining: number;
}

/**
 * Checks the names of `certificate` against one CA's constraints. Wildcard DNS names are
 * expanded defensively as described at the top of this module.
 */
export function checkNames(
  names: readonly GeneralName[],
  compiled: CompiledConstraints,
  budget: ComparisonBudget,
  subjectLabel: string,
): Problem | undefined {
  for (const name of names) {
    const form = formOf(name);
    budget.remaining -= compiled.permitted.length + compiled.excluded.length;
    if (budget.remaining < 0) {
      return problem(
        'BUDGET_EXCEEDED',
        'too many name constraint comparisons (pathological certificate)',
      );
    }
    if (name.type === 'other') {
      const unprocessable = [...compiled.permitted, ...compiled.excluded].some(
        (constraint) => constraint.form === 'other' && constraint.label === name.form,
      );
      if (unprocessable) {
        return problem(
          'NAME_CONSTRAINT',
          `${subjectLabel} has an ${name.form} name, for which name constraints cannot be checked`,
        );
      }
      continue;
    }
    const isWildcard = name.type === 'dns' && name.value.startsWith('*.');
    for (const constraint of compiled.excluded) {
      if (constraint.form !== form) continue;
      const hit = isWildcard
        ? wildcardMayMatch(name.value.toLowerCase(), constraint.label.toLowerCase())
        : constraint.matches(name);
      if (hit)
        return problem(
          'NAME_CONSTRAINT',
          `${subjectLabel} name ${describe(name)} is in excluded subtree ${constraint.label}`,
        );
    }
    if (compiled.permittedForms.has(form)) {
      const ok = compiled.permitted.some((constraint) => {
        if (constraint.form !== form) return false;
        if (isWildcard)
          return dnsWithin(name.value.toLowerCase().slice(2), constraint.label.toLowerCase());
        return constraint.matches(name);
      });
      if (!ok)
        return problem(
          'NAME_CONSTRAINT',
          `${subjectLabel} name ${describe(name)} is outside the permitted subtrees`,
        );
    }
    if (name.type === 'uri' && uriHost(name.value) === undefined) {
      const constrained = [...compiled.permitted, ...compiled.excluded].some(
        (c) => c.form === 'uri',
      );
      if (constrained)
        return problem(
          'NAME_CONSTRAINT',
          `${subjectLabel} URI ${name.value} has no host to check against the constraints`,
        );
    }
  }
  return undefined;
}

/** Whether some name matched by "*.rest" falls within the DNS subtree `constraint`. */
function wildcardMayMatch(wildcard: string, constraint: string): boolean {
  const rest = wildcard.slice(2);
  if (dnsWithin(rest, constraint)) return true;
  // "*.rest" matches "x.rest" for any single label x: that is within "y.rest" for x = y.
  const dot = constraint.indexOf('.');
  return dot > 0 && constraint.slice(dot + 1) === rest;
}

function describe(name: GeneralName): string {
  switch (name.type) {
    case 'ip':
      return name.bytes.length === 4 || name.bytes.length === 16
        ? formatIp(name.bytes)
        : 'iPAddress';
    case 'dn':
      return 'directoryName';
    case 'other':
      return name.form;
    default:
      return `"${name.value}"`;
  }
}
