import { lookup as dnsLookup, promises as dns, type LookupAddress, type LookupAllOptions, type LookupOneOptions } from 'node:dns';
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';

// Where a webhook may be sent: only to public unicast addresses (the SSRF guard of SPEC §4 webhooks). The ranges
// are ipaddr.js's: anything it does not call `unicast` — loopback, private (RFC 1918), unique-local, link-local
// (169.254.169.254 included), multicast, unspecified, carrier-grade NAT, reserved, and the IPv6 forms that carry
// an IPv4 address (mapped, 6to4, Teredo, NAT64) — is refused, and so is any IPv6 address outside 2000::/3 (the
// IPv4-compatible ::a.b.c.d among them).

/** Global unicast IPv6 (2000::/3): every public IPv6 address is in it, none of the forms that embed an IPv4 one. */
const globalUnicast6 = ipaddr.parseCIDR('2000::/3') as [ipaddr.IPv6, number];

/** What kind of non-public address `address` is ("a loopback address"), or null when it is public. */
function nonPublicKind(address: string): string | null {
  if (!ipaddr.isValid(address)) return 'not an IP address';
  const parsed = ipaddr.process(address);
  const range = parsed.range();
  if (range !== 'unicast') return `a ${range} address, not a public one`;
  // ipaddr.js calls some IPv6 forms unicast that carry an IPv4 address (IPv4-compatible ::a.b.c.d, ::/96).
  if (parsed.kind() === 'ipv6' && !(parsed as ipaddr.IPv6).match(globalUnicast6)) return 'not a global unicast IPv6 address';
  return null;
}

/** Why an address is refused ("127.0.0.1 is a loopback address, …"), or null when it is public. */
export function nonPublicReason(address: string): string | null {
  const kind = nonPublicKind(address);
  return kind && `${address} is ${kind}`;
}

/** Why a name is refused given the addresses it resolved to, or null when every one is public. */
function nonPublicAmong(host: string, addresses: string[]): string | null {
  for (const address of addresses) {
    const kind = nonPublicKind(address);
    if (kind) return `${host} resolves to ${address}, which is ${kind}`;
  }
  return null;
}

/** A URL's host without the brackets of an IPv6 literal. */
export function hostOf(url: URL): string {
  return url.hostname.replace(/^\[(.*)\]$/, '$1');
}

/**
 * Resolves `host` (or takes it as it is, when it is an address) and answers why it is not public, or null when
 * every address it resolves to is. A name that does not resolve (within `timeoutMs`) passes: it reaches nothing
 * now, and every send checks the address it connects to (`publicOnlyLookup`).
 *
 * @example const reason = await nonPublicHost('example.com'); // null
 */
export async function nonPublicHost(host: string, timeoutMs = 3000): Promise<string | null> {
  if (isIP(host)) return nonPublicReason(host);
  try {
    const addresses = await withTimeout(dns.lookup(host, { all: true }), timeoutMs);
    return nonPublicAmong(host, addresses.map((a) => a.address));
  } catch {
    return null;
  }
}

type LookupCallback = (error: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/**
 * A `lookup` for `http.request` that fails the connection when the name resolves to an address that is not public:
 * the check and the connection use the same answer, so a name cannot resolve to a public address for the check and
 * to a private one for the connection (DNS rebinding).
 */
export function publicOnlyLookup(hostname: string, options: LookupOneOptions | LookupAllOptions, callback: LookupCallback): void {
  dnsLookup(hostname, { ...options, all: true }, (error, addresses) => {
    if (error) return callback(error, '');
    const refused = nonPublicAmong(hostname, addresses.map((a) => a.address));
    if (refused) return callback(Object.assign(new Error(refused), { code: 'ENOTPUBLIC' }), '');
    if ((options as LookupAllOptions).all) return callback(null, addresses);
    callback(null, addresses[0]!.address, addresses[0]!.family);
  });
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('timed out')), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
