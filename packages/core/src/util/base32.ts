/**
 * RFC 4648 base32 of a SHA-256 digest, as kube-proxy hashes its chain names.
 *
 * @module
 */
import { createHash } from "node:crypto";

const BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/**
 * The first `chars` characters of the RFC 4648 base32 encoding of sha256(`text`)
 * (kube-proxy: 16 for iptables chain names, 8 for nftables ones).
 */
export function sha256Base32(text: string, chars: number): string {
  const bytes = createHash("sha256").update(text).digest();
  let out = "";
  let buffer = 0;
  let bits = 0;
  for (let i = 0; out.length < chars && i < bytes.length; i++) {
    buffer = ((buffer << 8) | bytes[i]!) & 0xffff;
    bits += 8;
    while (bits >= 5 && out.length < chars) {
      bits -= 5;
      out += BASE32[(buffer >>> bits) & 31];
    }
  }
  return out;
}
