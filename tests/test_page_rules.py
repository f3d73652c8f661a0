"""Training sessions see the page's rules (annotator_backend/training/page_rules.py)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from annotator_backend.decoding import finish_masks, prompt_cells
from annotator_backend.sam_factory import build_bootstrap_sam
from annotator_backend.training import train
from annotator_backend.training.embeddings import EmbeddingDataset
from annotator_backend.training.page_rules import shown_logits, window_cells
from tests.test_training import _tiny_cfg, synthetic_samples


def _smooth_logits(rng: np.random.Generator, m: int, size: int = 256) -> np.ndarray:
    return (np.kron(rng.normal(size=(m, size // 16, size // 16)), np.ones((16, 16))) * 4).astype(np.float32)


def test_whole_frame_rules_are_the_page_rules() -> None:
    """On the 256-cell frame at offset 0, `shown_logits` is `decoding.finish_masks` on output 0,
    bit for bit: islands (with and without the previous mask) and the click rule."""
    rng = np.random.default_rng(3)
    raw = _smooth_logits(rng, 3)
    prev = _smooth_logits(rng, 3)
    coords = rng.uniform(0, 1023, (3, 6, 2)).astype(np.float32)
    labels = rng.integers(0, 2, (3, 6)).astype(np.float32)
    labels[2, 4:] = (2, 3)  # a box
    coords[2, 4:] = ((100, 120), (700, 650))
    labels[1, -1] = -1  # padding
    fed = np.array([True, False, True])
    got = shown_logits(
        torch.from_numpy(raw),
        torch.from_numpy(coords),
        torch.from_numpy(labels),
        torch.zeros(3, 1, 2),
        0.25,
        torch.from_numpy(prev),
        torch.from_numpy(fed),
        None,
    ).numpy()
    for i in range(3):
        mask_input = prev[i] if fed[i] else None
        page = finish_masks(raw[i : i + 1], coords[i : i + 1], labels[i : i + 1], mask_input, None, [0])
        assert np.array_equal(got[i], page[0]), i
    assert not np.array_equal(got, raw)  # the rules fired


def test_window_cells_are_the_page_cells_shifted() -> None:
    """A window at (256, 128) px of the 1024 frame, 4 px per cell as on the page."""
    coords = torch.tensor([[[300.5, 140.0], [511.9, 383.9], [256.0, 128.0]]])
    cells = window_cells(coords, torch.tensor([[[256.0, 128.0]]]), 0.25, 64)
    page = prompt_cells(coords.numpy()) - np.array([64, 32])
    assert cells[0].tolist() == page.tolist() == [[11, 3], [63, 63], [0, 0]]
    far = window_cells(torch.tensor([[[900.0, 10.0]]]), torch.tensor([[[256.0, 128.0]]]), 0.25, 64)
    assert far[0].tolist() == [[63, 0]]  # clipped to the window's grid


def test_decoder_sessions_feed_back_what_the_page_shows(tmp_path: Path, monkeypatch) -> None:
    """With `page_rules`, every pass's fed-back mask is the page's: after snapping, each clicked
    cell is on its label's side (the last point of a cell decides); without, the rules stay out."""
    from annotator_backend.training import simulate

    torch.manual_seed(0)
    sam = build_bootstrap_sam()
    ds = EmbeddingDataset(synthetic_samples(1, size=48), sam, max_masks=2, guides=True)
    calls: list[tuple[torch.Tensor, np.ndarray, np.ndarray, bool]] = []

    def recorded(raw, coords, labels, offset, scale, mask_input, fed, guide):  # noqa: ANN001, ANN202
        out = real(raw, coords, labels, offset, scale, mask_input, fed, guide)
        cells = window_cells(coords, offset, scale, raw.shape[-1])
        calls.append((out, cells, labels.cpu().numpy(), guide is not None))
        return out

    real = simulate.shown_logits
    monkeypatch.setattr(simulate, "shown_logits", recorded)
    base = _tiny_cfg(tmp_path, 2, mode="decoder", ema=0.0)
    session = replace(base.session, edge_snap=True, page_rules=True, clicks=3)
    out = train(sam, ds, replace(base, session=session))
    assert out["steps"] == 2 and np.isfinite(out["loss"])
    assert len(calls) >= 2 and all(snapped for *_, snapped in calls)
    for shown, cells, labels, _ in calls:
        for i in range(len(shown)):
            last = {}
            for (x, y), v in zip(cells[i].tolist(), labels[i].tolist(), strict=True):
                if v in (0.0, 1.0):
                    last[(x, y)] = v
            for (x, y), v in last.items():
                assert (shown[i, y, x] > 0) == (v == 1.0), (i, x, y, v)
    calls.clear()
    plain = replace(session, page_rules=False)
    train(sam, ds, replace(_tiny_cfg(tmp_path / "b", 1, mode="decoder", ema=0.0), session=plain))
    assert calls == []
