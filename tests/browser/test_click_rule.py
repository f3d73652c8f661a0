"""static/js/finish.js (islands, the click rule, edge snapping, the click rule again) shows a
decode exactly as annotator_backend/decoding.finish_masks computes it."""

from __future__ import annotations

import numpy as np
from browser_harness import Instance

from annotator_backend.click_rule import enforce_clicks
from annotator_backend.decoding import finish_masks
from annotator_backend.edge_snap import image_guide

FINISH = """async ([m, c, l, n, p, px, w, h, shown, chosen]) => {
    const { imageGuide } = await import('/static/js/edge_snap.js');
    const { finishShown, snapOutput } = await import('/static/js/finish.js');
    const a = new Float32Array(m);
    const prompt = { coords: new Float32Array(c), labels: new Float32Array(l), count: n };
    const guide = imageGuide(new Uint8ClampedArray(px), w, h);
    finishShown(a, prompt, p && new Float32Array(p), shown, chosen, guide);
    for (const k of shown) if (k !== chosen) snapOutput(a, k, prompt, guide);  // picked later
    return Array.from(a);
}"""

RULE = """async ([m, c, l, n, outputs]) => {
    const { enforceClicks } = await import('/static/js/clicks.js');
    const a = new Float32Array(m);
    const changed = enforceClicks(a, new Float32Array(c), new Float32Array(l), n, outputs);
    return [changed, Array.from(a)];
}"""


def test_js_click_rule_and_finish_match_python(page, server: Instance) -> None:  # noqa: ANN001
    page.goto(f"{server.base_url}/")
    rng = np.random.default_rng(11)
    masks = (np.kron(rng.normal(size=(4, 16, 16)), np.ones((16, 16))) * 5).astype(np.float32)
    masks += rng.normal(size=masks.shape).astype(np.float32)
    prompts = [
        ([[600.5, 300.25], [0.0, 0.0]], [1, -1], None),
        ([[10.0, 1023.9], [700.0, 300.0], [705.0, 310.0], [1.0, 2.0]], [1, 0, 1, 0], None),
        ([[50.0, 60.0], [300.0, 500.0], [200.0, 200.0]], [2, 3, 0], masks[0]),
    ]
    h, w = 500, 700
    yy, xx = np.mgrid[:h, :w]
    rgb = np.stack([(xx * 5) % 256, (yy * 3) % 256, ((xx > 350) ^ (yy > 200)) * 220], -1)
    rgb = (rgb + rng.integers(0, 30, rgb.shape)).clip(0, 255).astype(np.uint8)
    rgba = np.concatenate([rgb, np.full((h, w, 1), 255, np.uint8)], -1)
    guide = image_guide(rgb)
    bumped = 0
    for coords, labels, prev in prompts:
        c = np.array([coords], np.float32)
        lbl = np.array([labels], np.float32)
        args = [masks.ravel().tolist(), c.ravel().tolist(), lbl.ravel().tolist(), len(labels)]
        changed, got = page.evaluate(RULE, [*args, [0, 2]])
        want = enforce_clicks(masks, c, lbl, [0, 2])
        assert changed == (want is not masks)
        bumped += changed
        assert np.array_equal(np.array(got, np.float32).reshape(masks.shape), want), coords
        shown = [1, 2, 3] if labels == [1, -1] else [0]
        prev_arg = None if prev is None else prev.ravel().tolist()
        got = page.evaluate(FINISH, [*args, prev_arg, rgba.ravel().tolist(), w, h, shown, shown[-1]])
        want = finish_masks(masks, c, lbl, prev, guide, shown)[shown]  # Python drops islands in all 4
        assert np.array_equal(np.array(got, np.float32).reshape(masks.shape)[shown], want), coords
    assert bumped >= 2
