/**
 * Stable refusal codes of the validator. Callers (the daemon, `trust` commands, tests) match on
 * the code; the reason is one line for an operator.
 */
export type ValidationCode =
  | 'MALFORMED'
  | 'BAD_VERSION'
  | 'BAD_SERIAL'
  | 'BAD_NAME'
  | 'CERT_EXPIRED'
  | 'CERT_NOT_YET_VALID'
  | 'UNKNOWN_ISSUER'
  | 'BAD_SIGNATURE'
  | 'UNSUPPORTED_ALGORITHM'
  | 'WEAK_KEY'
  | 'NOT_A_CA'
  | 'BAD_BASIC_CONSTRAINTS'
  | 'BAD_KEY_USAGE'
  | 'PATH_LEN'
  | 'CHAIN_TOO_LONG'
  | 'BAD_EKU'
  | 'NAME_CONSTRAINT'
  | 'BAD_NAME_CONSTRAINTS'
  | 'NAME_MISMATCH'
  | 'BAD_SAN'
  | 'CA_AS_LEAF'
  | 'UNKNOWN_CRITICAL_EXTENSION'
  | 'DUPLICATE_EXTENSION'
  | 'BAD_EXTENSION'
  | 'MISSING_AKI'
  | 'MISSING_SKI'
  | 'BAD_AKI'
  | 'REVOKED'
  | 'BAD_CRL'
  | 'CRL_EXPIRED'
  | 'BAD_SPIFFE_ID'
  | 'WRONG_TRUST_DOMAIN'
  | 'BUDGET_EXCEEDED';

export interface Problem {
  code: ValidationCode;
  reason: string;
}

export function problem(code: ValidationCode, reason: string): Problem {
  return { code, reason };
}
