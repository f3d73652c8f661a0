"""The decoder's backend: WebGPU where the browser offers an adapter, else WASM, and a WebGPU
session that fails falls back to WASM by itself; the page shows which one runs."""

from __future__ import annotations

from browser_harness import Instance, body_data, wait_ready
from page_helpers import click_image, image_info


def _open(page, server: Instance, query: str = "") -> dict:  # noqa: ANN001
    page.goto(f"{server.base_url}/projects/{server.projects['demo']}/annotate{query}")
    wait_ready(page)
    return image_info(page, server)


def _has_adapter(page) -> bool:  # noqa: ANN001
    return page.evaluate(
        "async () => !!(navigator.gpu && await navigator.gpu.requestAdapter().catch(() => null))"
    )


def test_auto_uses_wasm_without_a_webgpu_adapter(page, server: Instance) -> None:  # noqa: ANN001
    _open(page, server)
    shown = page.locator("[data-testid=decoder-backend]").text_content()
    if _has_adapter(page):  # a browser with WebGPU runs the decoder there
        assert body_data(page, "decoderBackend") == "webgpu" and shown.startswith("webgpu")
        return
    assert body_data(page, "decoderBackend") == "wasm"
    assert shown.startswith("wasm ×"), shown
    assert body_data(page, "decoderFallback")  # why not WebGPU, e.g. "no WebGPU adapter"
    assert "decoder wasm" in page.locator("[data-testid=status]").text_content()


def test_failing_webgpu_session_falls_back_to_wasm(page, server: Instance) -> None:  # noqa: ANN001
    """The WebGPU path forced to throw (?fault=webgpu), then WebGPU asked for where there is no
    adapter: both end on WASM, report why, and decode."""
    img = _open(page, server, "?backend=webgpu&fault=webgpu")
    assert body_data(page, "decoderBackend") == "wasm"
    assert "simulated failure" in body_data(page, "decoderFallback")
    assert page.locator("[data-testid=decoder-backend]").get_attribute("title").startswith("not WebGPU")
    click_image(page, img, 150.0, 110.0)
    assert int(body_data(page, "maskArea")) > 0
    page.keyboard.press("Escape")  # no draft left for the next page load to restore
    page.wait_for_function("document.body.dataset.pendingEvents === '0'")
    if _has_adapter(page):
        return
    img = _open(page, server, "?backend=webgpu")
    assert body_data(page, "decoderBackend") == "wasm"
    assert body_data(page, "decoderFallback").startswith("WebGPU session failed")
    click_image(page, img, 150.0, 110.0)
    assert int(body_data(page, "maskArea")) > 0


def test_decoder_variants_paint_the_same_mask(page, server: Instance) -> None:  # noqa: ANN001
    """The page's split decoder (default), its quantized copy and the contract's one graph:
    each reports its format, and one click paints (nearly) the same mask with all three."""
    areas = {}
    for variant, fmt in (("", "split"), ("?decoder=split_int8", "split"), ("?decoder=fp32", "contract")):
        img = _open(page, server, variant)
        assert body_data(page, "decoderFormat") == fmt
        assert body_data(page, "edgeSnap") == "on"  # the worker got the image's pixels
        click_image(page, img, 150.0, 110.0)
        areas[variant or "split"] = int(body_data(page, "maskArea"))
        page.keyboard.press("Escape")
        page.wait_for_function("document.body.dataset.pendingEvents === '0'")
    assert areas["split"] > 0
    assert abs(areas["?decoder=fp32"] - areas["split"]) <= 0.01 * areas["split"], areas
    # The random-weight model's logits are near 0 over wide areas; edge snapping turns them into
    # probabilities near 0.5 that a colour edge can tip either way, so int8's small logit
    # differences move more pixels than they did unsnapped (5 %). Its own test holds the masks.
    assert abs(areas["?decoder=split_int8"] - areas["split"]) <= 0.10 * areas["split"], areas


NO_MASK_THEN_MASK = """async (pid) => {
    const { DecoderClient } = await import('/static/js/decoder_client.js');
    const next = await (await fetch(`/api/projects/${pid}/next`)).json();
    const run = async (url, maskFrom) => {
        const d = new DecoderClient();
        await d.init(url, { backend: 'wasm', numThreads: 1 });
        await d.loadEmbedding('k', next.embedding_url);
        const req = (maskInput) => ({ coords: new Float32Array([300, 200, 0, 0]),
                                      labels: new Float32Array([1, -1]), count: 2,
                                      maskInput, multimask: !maskInput });
        const first = await d.decode('k', req(null));
        const k = first.index * 65536;
        const mask = (maskFrom || first.masks).slice(k, k + 65536);
        const second = await d.decode('k', req(mask));
        d.terminate();
        return { first, second, mask };
    };
    const split = await run(next.model.decoder_url, null);
    const contract = next.model.decoder_url.replace('variant=split', 'variant=fp32');
    const whole = await run(contract, split.first.masks);
    const same = (a, b) => a.masks.reduce((n, v, i) => n + ((v > 0) === (b.masks[i] > 0)), 0);
    const agree = (a, b) => same(a, b) / a.masks.length;
    return { graphs: [split.first.graph, split.second.graph, whole.first.graph],
             index: [split.first.index, whole.first.index],
             agree: [agree(split.first, whole.first), agree(split.second, whole.second)] };
}"""


def test_prompts_without_a_mask_run_their_own_graph(page, server: Instance) -> None:  # noqa: ANN001
    """The split decoder runs its graph for prompts without a mask input at a first click and
    its full per-click graph once a mask goes back in; both give the contract graph's masks."""
    _open(page, server)
    r = page.evaluate(NO_MASK_THEN_MASK, server.projects["demo"])
    assert r["graphs"] == ["nomask", "decode", "decode"]
    assert r["index"][0] == r["index"][1]
    assert min(r["agree"]) >= 0.999, r["agree"]
