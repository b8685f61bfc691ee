import type { TLSSocket } from 'node:tls';

/** The certificate chain the other end of a TLS connection sent, leaf first, as DER. */
export function presentedChain(socket: TLSSocket): Buffer[] {
  const leaf = socket.getPeerCertificate(true);
  if (!leaf || !leaf.raw) return [];
  const chain: Buffer[] = [leaf.raw];
  let current = leaf;
  // Node links the sent certificates by issuer; a self-issued root points at itself.
  while (current.issuerCertificate && current.issuerCertificate !== current && chain.length < 8) {
    current = current.issuerCertificate;
    const raw = current.raw;
    if (chain.some((der) => der.equals(raw))) break;
    chain.push(raw);
  }
  return chain;
}

/**
 * Whether the handshake has completed with a server certificate: a kept-alive socket's has, a new
 * one's has not. getProtocol() is no test: it answers before the handshake.
 */
export function hasPeerCertificate(socket: TLSSocket): boolean {
  const certificate = socket.getPeerCertificate?.() as { raw?: Buffer } | null | undefined;
  return Boolean(certificate?.raw);
}
