/**
 * 64-bit FNV-1a over the UTF-8 bytes of a string, computed in four 16-bit limbs so it needs no
 * BigInt on the routing hot path. Returns the hash as [high 32 bits, low 32 bits], unsigned.
 */
export function fnv1a64(text: string): [number, number] {
  // Offset basis 0xcbf29ce484222325, as limbs from least to most significant.
  let l0 = 0x2325;
  let l1 = 0x8422;
  let l2 = 0x9ce4;
  let l3 = 0xcbf2;
  const bytes = isAscii(text) ? null : new TextEncoder().encode(text);
  const length = bytes ? bytes.length : text.length;
  for (let i = 0; i < length; i++) {
    l0 ^= bytes ? bytes[i]! : text.charCodeAt(i);
    // Multiply by the FNV prime 0x100000001b3 = 2^40 + 0x1b3, keeping 64 bits.
    const t0 = l0 * 0x1b3;
    const t1 = l1 * 0x1b3 + (t0 >>> 16);
    const t2 = l2 * 0x1b3 + (t1 >>> 16) + (l0 << 8);
    const t3 = l3 * 0x1b3 + (t2 >>> 16) + (l1 << 8);
    l0 = t0 & 0xffff;
    l1 = t1 & 0xffff;
    l2 = t2 & 0xffff;
    l3 = t3 & 0xffff;
  }
  return [((l3 << 16) | l2) >>> 0, ((l1 << 16) | l0) >>> 0];
}

function isAscii(text: string): boolean {
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 0x7f) return false;
  return true;
}
