// IEEE half floats (the embedding's wire format, issue 6) to the Float32Array the decoder
// takes. Native Float16Array where the browser has one, else a 65536-entry lookup table built
// once (256 KiB); either way about 1 M values convert in a few milliseconds, once per image.

let table = null;

/** The float value of half-float bits `h`. */
export function halfBits(h) {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24; // zero and subnormals
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1024 + frac) * 2 ** (exp - 25);
}

function halfTable() {
  if (!table) {
    table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) table[h] = halfBits(h);
  }
  return table;
}

/** Little-endian half floats in `buf` (an ArrayBuffer) -> a new Float32Array. */
export function halfToFloat32(buf, { native = true } = {}) {
  if (native && typeof Float16Array === "function") return new Float32Array(new Float16Array(buf));
  const src = new Uint16Array(buf);
  const out = new Float32Array(src.length);
  const t = halfTable();
  for (let i = 0; i < src.length; i++) out[i] = t[src[i]];
  return out;
}

/** Raw embedding bytes of `dtype` ("float16" | "float32") -> Float32Array. */
export function embeddingFloats(buf, dtype) {
  if (dtype === "float16") return halfToFloat32(buf);
  if (dtype === "float32") return new Float32Array(buf);
  throw new Error(`embedding dtype ${dtype}: expected float16 or float32`);
}
