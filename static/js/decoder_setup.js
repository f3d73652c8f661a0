// Which decoder the annotate page loads, and how the page reports the backend it runs on.
// Page URL options (benchmarks and tests only):
//   ?backend=auto|wasm|webgpu   auto (default): WebGPU where the browser offers an adapter
//   ?threads=N                  WASM threads (default: 2 when cross-origin isolated)
//   ?decoder=split|split_int8|fp32|int8|official  the decoder variant to fetch instead of the
//                               server's choice: "split" (default) the per-image + per-click
//                               graphs, "split_int8" the same, per-click graph quantized
//                               (DECODER_QUANTIZED=1), "fp32" the contract's one graph, "int8"
//                               its quantized copy,
//                               "official" the official demo's export run the official way
//                               (orig_im_size in, image-size masks out): the benchmark anchor
//   ?fault=webgpu               the WebGPU path throws (to test the fallback to WASM)

import { mark } from "./status.js";

/** The decoder URL to fetch (with the ?decoder variant) and the worker's init options; the
 * variant decides how the worker runs it (DecoderClient.init). */
export function decoderRequest(url, params) {
  const u = new URL(url, location.origin);
  if (params.get("decoder")) u.searchParams.set("variant", params.get("decoder"));
  return {
    url: u.pathname + u.search,
    options: {
      backend: params.get("backend") || "auto",
      numThreads: Number(params.get("threads")) || 0,
      fault: params.get("fault") || null,
    },
  };
}

/**
 * Show the backend the worker runs on (info: its "ready" reply) in `el` and the status line,
 * and on body data: decoderBackend (wasm|webgpu), decoderThreads, decoderFallback (why not
 * WebGPU, "" when it is used), decoderFormat.
 */
export function showDecoder(info, el, status) {
  const threads = info.backend === "wasm" ? ` × ${info.numThreads} thread${info.numThreads > 1 ? "s" : ""}` : "";
  const text = `${info.backend}${threads}${info.format === "official" ? " (official decoder)" : ""}`;
  el.textContent = text;
  el.title = info.fallback ? `not WebGPU: ${info.fallback}` : "";
  status.set("decoder", `decoder ${text}`);
  mark("decoderBackend", info.backend);
  mark("decoderThreads", info.numThreads);
  mark("decoderFallback", info.fallback || "");
  mark("decoderFormat", info.format);
}
