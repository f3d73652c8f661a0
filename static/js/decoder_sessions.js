// The decoder worker's onnxruntime-web sessions: the graphs a decoder URL stands for
// (decoderFormat in decoder_client.js), fetched once and made into sessions on one execution
// provider, and the one that runs a given prompt.

/** {buf, headers} of `url`; a failed request throws, naming `what`. */
export async function fetchBytes(url, what) {
  const resp = await fetch(url, { credentials: "same-origin" });
  if (!resp.ok) throw new Error(`${what}: HTTP ${resp.status} for ${url}`);
  return { buf: await resp.arrayBuffer(), headers: resp.headers };
}

/**
 * The graphs of an init request: {decode, prepare, noMask}, each {buf} or null. `decode` is
 * `modelUrl`'s (the per-click graph, or the whole decoder); format "split" adds its per-image
 * graph and its per-click graph for prompts without a mask input.
 */
export async function fetchGraphs(msg) {
  const [decode, prepare, noMask] = await Promise.all([
    fetchBytes(msg.modelUrl, "decoder model"),
    msg.prepareUrl ? fetchBytes(msg.prepareUrl, "decoder prepare model") : null,
    msg.noMaskUrl ? fetchBytes(msg.noMaskUrl, "decoder model without mask input") : null,
  ]);
  return { decode, prepare, noMask };
}

/** Sessions {decode, prepare, noMask} of `graphs` on `provider`, null where a graph is. */
export async function createSessions(ort, graphs, provider) {
  const opts = { graphOptimizationLevel: "all", executionProviders: [provider] };
  const make = (g) => (g ? ort.InferenceSession.create(new Uint8Array(g.buf), opts) : null);
  const [decode, prepare, noMask] = await Promise.all([make(graphs.decode), make(graphs.prepare), make(graphs.noMask)]);
  return { decode, prepare, noMask };
}

/** The session and feeds for a prompt: without a mask input, the graph made for that if any. */
export function sessionFor(sessions, feeds, hasMask) {
  const s = !hasMask && sessions.noMask ? sessions.noMask : sessions.decode;
  return [s, s === sessions.decode ? feeds : Object.fromEntries(s.inputNames.map((k) => [k, feeds[k]]))];
}
