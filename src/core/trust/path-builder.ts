/**
 * Certification path building: a depth-first search from the leaf towards a trust anchor over
 * every candidate issuer (subject equal to the issuer name; candidates whose key identifier
 * matches the authority key identifier are tried first), with backtracking, loop detection and
 * hard budgets so that hostile inputs fail fast.
 *
 * Every rule that depends on the path is checked as soon as a candidate issuer is added, against
 * the certificates already below it: the issuer's own rules, the signature, path length, chain
 * depth, name constraints and revocation. A candidate that fails is dropped and the next one tried.
 */
import type { ParsedCertificate } from './certificate.js';
import { checkIssuer, checkValidity, type Profile } from './checks.js';
import type { ParsedCrl } from './crl.js';
import { bytesEqual } from './der.js';
import {
  MAX_CONSTRAINT_COMPARISONS,
  checkNames,
  compileNameConstraints,
  constrainedNames,
  type ComparisonBudget,
} from './name-constraints.js';
import { KeyUsageBit } from './oids.js';
import { problem, type Problem } from './problem.js';
import { publicKeyOf, verifySignature } from './signatures.js';
import { count } from '../plural.js';

/** At most this many signature verifications per validation (Go's limit too). */
export const MAX_SIGNATURE_CHECKS = 100;
/** At most this many candidate issuers considered per validation. */
export const MAX_CANDIDATES = 1000;
/** Default limit of intermediates that are not self-issued. */
export const DEFAULT_MAX_CHAIN_DEPTH = 8;
/** Hard limit on intermediates, self-issued ones included. */
export const MAX_INTERMEDIATES = 12;

export interface PathBuilderOptions {
  anchors: readonly ParsedCertificate[];
  intermediates: readonly ParsedCertificate[];
  crls: readonly ParsedCrl[];
  time: number;
  profile: Profile;
  requiredEkus: readonly string[];
  maxChainDepth: number;
}

interface Failure {
  problem: Problem;
  rank: number;
}

export class PathBuilder {
  private readonly anchorIds: Set<string>;
  private readonly bySubject = new Map<string, ParsedCertificate[]>();
  private readonly signatureResults = new Map<string, Problem | null>();
  private readonly issuerResults = new Map<string, Problem | null>();
  private readonly selfSigned = new Map<string, boolean>();
  private readonly constraintBudget: ComparisonBudget = { remaining: MAX_CONSTRAINT_COMPARISONS };
  private signatureChecks = 0;
  private candidates = 0;
  private failure: Failure | undefined;

  constructor(private readonly options: PathBuilderOptions) {
    this.anchorIds = new Set(options.anchors.map((anchor) => anchor.id));
    // Anchors first, so that a chain ends at the first anchor it can reach.
    for (const certificate of [...options.anchors, ...options.intermediates]) {
      const list = this.bySubject.get(certificate.subject.key) ?? [];
      if (!list.some((other) => other.id === certificate.id)) list.push(certificate);
      this.bySubject.set(certificate.subject.key, list);
    }
  }

  /** The chain from the leaf to an anchor, or the most relevant reason none was found. */
  build(leaf: ParsedCertificate): ParsedCertificate[] | Problem {
    const path = this.extend([leaf]);
    if (path) return path;
    return (
      this.failure?.problem ??
      problem(
        'UNKNOWN_ISSUER',
        `no trust anchor or intermediate issued the peer certificate (issuer ${describeName(leaf)})`,
      )
    );
  }

  private extend(path: ParsedCertificate[]): ParsedCertificate[] | undefined {
    const current = path[path.length - 1] as ParsedCertificate;
    const candidates = this.candidatesFor(current);
    if (candidates.length === 0 && path.length > 1) {
      this.fail(
        path.length,
        problem(
          'UNKNOWN_ISSUER',
          `no trust anchor or intermediate issued ${describe(current, path.length - 1)}`,
        ),
      );
    }
    for (const candidate of candidates) {
      if (++this.candidates > MAX_CANDIDATES || this.signatureChecks >= MAX_SIGNATURE_CHECKS) {
        this.fail(
          Number.MAX_SAFE_INTEGER,
          problem('BUDGET_EXCEEDED', 'path building gave up: too many candidate issuers'),
        );
        return undefined;
      }
      const isAnchor = this.anchorIds.has(candidate.id);
      const refusal = this.tryIssuer(path, candidate, isAnchor);
      if (refusal) {
        this.fail(path.length + (isAnchor ? 0.5 : 0), refusal);
        continue;
      }
      const extended = [...path, candidate];
      if (isAnchor) return extended;
      const found = this.extend(extended);
      if (found) return found;
    }
    return undefined;
  }

  private candidatesFor(current: ParsedCertificate): ParsedCertificate[] {
    const all = this.bySubject.get(current.issuer.key) ?? [];
    const aki = current.authorityKeyId?.keyId;
    if (!aki) return all;
    const matching = all.filter((c) => c.subjectKeyId && bytesEqual(c.subjectKeyId, aki));
    const others = all.filter((c) => !matching.includes(c));
    const anchorsFirst = (list: ParsedCertificate[]): ParsedCertificate[] => [
      ...list.filter((c) => this.anchorIds.has(c.id)),
      ...list.filter((c) => !this.anchorIds.has(c.id)),
    ];
    return [...anchorsFirst(matching), ...anchorsFirst(others)];
  }

  /** Why `candidate` cannot issue the top of `path` here, or undefined when it can. */
  private tryIssuer(
    path: ParsedCertificate[],
    candidate: ParsedCertificate,
    isAnchor: boolean,
  ): Problem | undefined {
    const current = path[path.length - 1] as ParsedCertificate;
    const depth = path.length - 1;
    const label = isAnchor
      ? 'the trust anchor'
      : `intermediate ${describeName(candidate, 'subject')}`;

    if (candidate.id === current.id) {
      return problem(
        'UNKNOWN_ISSUER',
        `the chain ends at ${describe(current, depth)}, which is self-signed but not a trust anchor`,
      );
    }
    // A certificate, or the same subject and key, may appear only once on a path.
    for (const below of path) {
      if (
        below.id === candidate.id ||
        (below.subject.key === candidate.subject.key &&
          bytesEqual(below.spki.der, candidate.spki.der))
      ) {
        return problem('UNKNOWN_ISSUER', `the issuers of ${describe(current, depth)} form a loop`);
      }
    }
    const intermediatesBelow = path.slice(1);
    if (!isAnchor && intermediatesBelow.length + 1 > MAX_INTERMEDIATES) {
      return problem(
        'CHAIN_TOO_LONG',
        `the chain would have more than ${MAX_INTERMEDIATES} intermediates`,
      );
    }
    const logicalBelow = intermediatesBelow.filter((c) => !c.selfIssued).length;
    if (!isAnchor && !candidate.selfIssued && logicalBelow + 1 > this.options.maxChainDepth) {
      return problem(
        'CHAIN_TOO_LONG',
        `the chain would have more than ${this.options.maxChainDepth} intermediates`,
      );
    }

    const issuerProblem = this.checkIssuerOnce(candidate, label, isAnchor);
    if (issuerProblem) return issuerProblem;

    const pathLen = candidate.basicConstraints?.pathLen;
    if (pathLen !== undefined && logicalBelow > pathLen) {
      return problem(
        'PATH_LEN',
        `${label} allows ${count(pathLen, 'intermediate')} below it, the chain has ${logicalBelow}`,
      );
    }

    const signatureProblem = this.verifyIssued(current, candidate);
    if (signatureProblem) {
      const aki = current.authorityKeyId?.keyId;
      if (aki && candidate.subjectKeyId && !bytesEqual(aki, candidate.subjectKeyId)) {
        // Same name, another key: not this certificate's issuer at all.
        return problem(
          'UNKNOWN_ISSUER',
          `no trust anchor or intermediate issued ${describe(current, depth)} (no issuer with its authority key identifier)`,
        );
      }
      return problem(
        signatureProblem.code,
        `${describe(current, depth)}: ${signatureProblem.reason}`,
      );
    }

    if (candidate.nameConstraints) {
      const compiled = compileNameConstraints(candidate.nameConstraints);
      if ('code' in compiled) return compiled;
      for (let i = path.length - 1; i >= 0; i--) {
        const subject = path[i] as ParsedCertificate;
        // Self-issued intermediates are exempt (RFC 5280 §4.2.1.10); the leaf never is.
        if (i > 0 && subject.selfIssued) continue;
        const nameProblem = checkNames(
          constrainedNames(subject),
          compiled,
          this.constraintBudget,
          describe(subject, i),
        );
        if (nameProblem) return nameProblem;
      }
    }

    return this.checkRevocation(current, candidate, depth);
  }

  private checkIssuerOnce(
    candidate: ParsedCertificate,
    label: string,
    isAnchor: boolean,
  ): Problem | undefined {
    const key = `${isAnchor ? 'a' : 'i'}:${candidate.id}`;
    let result = this.issuerResults.get(key);
    if (result === undefined) {
      result =
        checkValidity(candidate, this.options.time, label) ??
        checkIssuer(candidate, label, {
          anchor: isAnchor,
          profile: this.options.profile,
          requiredEkus: this.options.requiredEkus,
          selfSigned: () => this.isSelfSigned(candidate),
        }) ??
        null;
      this.issuerResults.set(key, result);
    }
    return result ?? undefined;
  }

  private isSelfSigned(certificate: ParsedCertificate): boolean {
    let result = this.selfSigned.get(certificate.id);
    if (result === undefined) {
      result = this.verifyIssued(certificate, certificate) === undefined;
      this.selfSigned.set(certificate.id, result);
    }
    return result;
  }

  private verifyIssued(subject: ParsedCertificate, issuer: ParsedCertificate): Problem | undefined {
    const key = `${subject.id}:${issuer.id}`;
    let result = this.signatureResults.get(key);
    if (result === undefined) {
      this.signatureChecks++;
      const issuerKey = publicKeyOf(issuer.spki);
      result =
        ('code' in issuerKey
          ? issuerKey
          : verifySignature(
              subject.signatureAlgorithm,
              subject.tbs,
              subject.signature,
              issuerKey,
              issuer.spki,
            )) ?? null;
      this.signatureResults.set(key, result);
    }
    return result ?? undefined;
  }

  /** Complete CRLs of `issuer` that are given decide whether `subject` is revoked. */
  private checkRevocation(
    subject: ParsedCertificate,
    issuer: ParsedCertificate,
    depth: number,
  ): Problem | undefined {
    for (const crl of this.options.crls) {
      if (crl.issuer.key !== issuer.subject.key) continue;
      if (
        crl.authorityKeyId &&
        issuer.subjectKeyId &&
        !bytesEqual(crl.authorityKeyId, issuer.subjectKeyId)
      )
        continue;
      const where = `the CRL of ${describeName(issuer, 'subject')}`;
      if (crl.defect) return problem('BAD_CRL', `${where}: ${crl.defect}`);
      if (!crl.innerAlgorithmMatches)
        return problem('BAD_CRL', `${where}: its two signature algorithms differ`);
      if (issuer.keyUsage && !issuer.keyUsage.has(KeyUsageBit.cRLSign)) {
        return problem('BAD_CRL', `${where}: the issuer's keyUsage does not allow cRLSign`);
      }
      const signatureProblem = this.verifyCrl(crl, issuer);
      if (signatureProblem) return problem('BAD_CRL', `${where}: ${signatureProblem.reason}`);
      if (this.options.time < crl.thisUpdate)
        return problem('BAD_CRL', `${where} is not valid yet`);
      if (crl.nextUpdate === undefined) return problem('BAD_CRL', `${where} has no nextUpdate`);
      if (this.options.time > crl.nextUpdate) {
        return problem(
          'CRL_EXPIRED',
          `${where} expired at ${new Date(crl.nextUpdate).toISOString()}`,
        );
      }
      const serial = Buffer.from(subject.serial).toString('hex');
      if (crl.revokedSerials.has(serial))
        return problem('REVOKED', `${describe(subject, depth)} is revoked (serial ${serial})`);
    }
    return undefined;
  }

  private verifyCrl(crl: ParsedCrl, issuer: ParsedCertificate): Problem | undefined {
    const key = `crl:${crl.id}:${issuer.id}`;
    let result = this.signatureResults.get(key);
    if (result === undefined) {
      this.signatureChecks++;
      const issuerKey = publicKeyOf(issuer.spki);
      result =
        ('code' in issuerKey
          ? issuerKey
          : verifySignature(
              crl.signatureAlgorithm,
              crl.tbs,
              crl.signature,
              issuerKey,
              issuer.spki,
            )) ?? null;
      this.signatureResults.set(key, result);
    }
    return result ?? undefined;
  }

  private fail(rank: number, failure: Problem): void {
    if (!this.failure || rank > this.failure.rank) this.failure = { problem: failure, rank };
  }
}

function describe(certificate: ParsedCertificate, depth: number): string {
  return depth === 0
    ? 'the peer certificate'
    : `intermediate ${describeName(certificate, 'subject')}`;
}

function describeName(
  certificate: ParsedCertificate,
  which: 'subject' | 'issuer' = 'issuer',
): string {
  const name = which === 'subject' ? certificate.subject : certificate.issuer;
  const parts = name.rdns.flat().map((attribute) => {
    const short = ATTRIBUTE_NAMES[attribute.oid] ?? attribute.oid;
    return `${short}=${attribute.text ?? '#'}`;
  });
  return parts.length > 0 ? `"${parts.join(', ')}"` : '(empty name)';
}

const ATTRIBUTE_NAMES: Readonly<Record<string, string>> = {
  '2.5.4.3': 'CN',
  '2.5.4.6': 'C',
  '2.5.4.7': 'L',
  '2.5.4.8': 'ST',
  '2.5.4.10': 'O',
  '2.5.4.11': 'OU',
  '1.2.840.113549.1.9.1': 'emailAddress',
};
