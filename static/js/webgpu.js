// Whether this browser (page or worker) offers WebGPU hardware the decoder can run on.

/** Why WebGPU cannot be used here, or null when a hardware adapter is offered. */
export async function webgpuMissing() {
  if (!self.navigator || !navigator.gpu) return "no navigator.gpu";
  try {
    const adapter = await navigator.gpu.requestAdapter();
    if (!adapter) return "no WebGPU adapter";
    const info = adapter.info || {};
    if (adapter.isFallbackAdapter || info.isFallbackAdapter) return "software WebGPU adapter only";
    return null;
  } catch (err) {
    return `WebGPU adapter request failed: ${err?.message || err}`;
  }
}
