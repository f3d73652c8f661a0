"""Retraining pipeline: click simulation, losses, ONNX-equivalent decoding, train/resume, DDP."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from annotator_backend.onnx_export import DecoderOnnxModel
from annotator_backend.sam_factory import build_bootstrap_sam
from annotator_backend.training import AugmentConfig, CropDataset, Sample, SessionConfig, TrainConfig, train
from annotator_backend.training.data import SyntheticShapes, folder_samples, normalized_images
from annotator_backend.training.embeddings import EmbeddingDataset, frame_mask, zoomed_crop
from annotator_backend.training.loop import align_attention_init
from annotator_backend.training.losses import mask_losses, min_over_candidates
from annotator_backend.training.simulate import (
    BOX_BR,
    BOX_TL,
    PAD,
    POS,
    decode,
    embed_masks,
    embed_points,
    first_prompts,
    interior_distance,
    next_clicks,
    next_clicks_on_device,
    prompt_tokens,
    window_pe,
)

REPO = Path(__file__).resolve().parents[1]
DATASETS = REPO.parent / "shared" / "datasets"


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: faster than two on a shared CPU, and restored afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def synthetic_samples(n: int = 3, size: int = 96, seed: int = 0) -> list[Sample]:
    """Images with a bright rectangle and a dark disc, and their two masks."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        img = rng.integers(80, 140, (size, size + 16, 3), dtype=np.uint8)
        yy, xx = np.mgrid[:size, : size + 16]
        x0, y0 = rng.integers(5, 30, 2)
        rect = (xx >= x0) & (xx < x0 + 40) & (yy >= y0) & (yy < y0 + 30)
        cx, cy = rng.integers(50, 80, 2)
        disc = (xx - cx) ** 2 + (yy - cy) ** 2 < 15**2
        img[rect] = (230, 200, 40)
        img[disc] = (20, 30, 160)
        out.append(Sample(img, [rect & ~disc, disc]))
    return out


def test_next_clicks_positive_in_missed_negative_in_extra() -> None:
    gt = torch.zeros(3, 32, 32, dtype=torch.bool)
    pred = torch.zeros(3, 32, 32, dtype=torch.bool)
    gt[0, 8:24, 8:24] = True  # nothing predicted: only missed pixels
    pred[1, 4:12, 4:12] = True  # nothing to find: only extra pixels
    gt[2, 0:16] = True  # half right, a missed and an extra band
    pred[2, 8:24] = True
    rng = random.Random(0)
    for interior in (0.0, 1.0):
        for _ in range(20):
            coords, labels = next_clicks(pred, gt, crop=64, interior=interior, rng=rng)
            for i in range(3):
                x, y = (coords[i] / 2).long().tolist()  # window px -> error-map px
                missed = bool(gt[i, y, x] and not pred[i, y, x])
                extra = bool(pred[i, y, x] and not gt[i, y, x])
                assert (labels[i] == POS and missed) or (labels[i] == 0 and extra)
    assert labels[0] == POS and labels[1] == 0
    coords, labels = next_clicks(gt.clone(), gt, crop=64, interior=0.5, rng=rng)
    assert (labels == PAD).all()  # no error: padding


def test_interior_click_is_most_interior() -> None:
    gt = torch.zeros(1, 40, 40, dtype=torch.bool)
    gt[0, 10:31, 5:26] = True
    coords, labels = next_clicks(torch.zeros_like(gt), gt, crop=40, interior=1.0, rng=random.Random(0))
    assert labels[0] == POS
    assert coords[0].tolist() == [15.5, 20.5]


def test_interior_distance_tracks_the_euclidean_transform() -> None:
    from scipy import ndimage

    yy, xx = np.mgrid[:64, :64]
    shapes = [(xx - 30) ** 2 + (yy - 34) ** 2 < 20**2, (abs(xx - 40) < 20) & (abs(yy - 12) < 9)]
    region = torch.from_numpy(np.stack(shapes))
    d = interior_distance(region)
    for i, m in enumerate(shapes):
        exact = ndimage.distance_transform_edt(np.pad(m, 1))[1:-1, 1:-1]
        assert torch.equal(d[i] > 0, region[i])  # zero exactly outside the region
        y, x = divmod(int(d[i].argmax()), 64)
        assert exact[y, x] >= exact.max() - 1.5  # its deepest pixel is (nearly) the exact one's
        assert abs(float(d[i].max()) - exact.max()) <= 0.1 * exact.max() + 1


def testnext_clicks_on_device_follow_the_same_rule() -> None:
    gt = torch.zeros(3, 32, 32, dtype=torch.bool)
    pred = torch.zeros(3, 32, 32, dtype=torch.bool)
    gt[0, 8:24, 8:24] = True
    pred[1, 4:12, 4:12] = True
    gt[2, 0:16] = True
    pred[2, 8:24] = True
    torch.manual_seed(0)
    for interior in (0.0, 1.0):
        for _ in range(10):
            coords, labels = next_clicks_on_device(pred, gt, 2.0, interior)
            for i in range(3):
                x, y = (coords[i] / 2).long().tolist()
                missed = bool(gt[i, y, x] and not pred[i, y, x])
                extra = bool(pred[i, y, x] and not gt[i, y, x])
                assert (labels[i] == POS and missed) or (labels[i] == 0 and extra)
    coords, labels = next_clicks_on_device(pred, gt, 2.0, 1.0)
    assert set(coords[0].tolist()) <= {31.0, 33.0} and labels[1] == 0  # a centre pixel of the square
    _, labels = next_clicks_on_device(gt.clone(), gt, 2.0, 0.5)
    assert (labels == PAD).all()


def test_first_prompts_point_inside_and_noisy_box() -> None:
    gt = torch.zeros(40, 32, 32)
    gt[:, 8:20, 10:30] = 1
    rng = random.Random(1)
    coords, labels, is_box = first_prompts(gt, 64, SessionConfig(box_prob=0.5), rng)
    assert 0 < is_box.sum() < 40
    for i in range(40):
        if is_box[i]:
            assert labels[i].tolist() == [BOX_TL, BOX_BR]
            (x0, y0), (x1, y1) = coords[i].tolist()
            assert abs(x0 - 20) <= 20 and abs(y0 - 16) <= 20 and abs(x1 - 60) <= 20 and abs(y1 - 40) <= 20
        else:
            assert labels[i].tolist() == [POS, PAD]
            x, y = (coords[i, 0] / 2).long().tolist()
            assert gt[i, y, x] == 1


def test_prompt_token_order_matches_browser() -> None:
    first = torch.tensor([[[1.0, 1.0], [0.0, 0.0]], [[2.0, 2.0], [9.0, 9.0]]])
    first_lab = torch.tensor([[POS, PAD], [2.0, 3.0]])
    clicks, click_lab = torch.tensor([[[5.0, 5.0]], [[6.0, 6.0]]]), torch.tensor([[0.0], [1.0]])
    coords, labels = prompt_tokens(first, first_lab, clicks, click_lab, torch.tensor([False, True]))
    assert labels.tolist() == [[POS, 0.0, PAD], [1.0, 2.0, 3.0]]
    assert coords[1].tolist() == [[6.0, 6.0], [2.0, 2.0], [9.0, 9.0]]


def test_min_over_three_candidates() -> None:
    target = torch.zeros(2, 16, 16)
    target[:, 4:12, 4:12] = 1
    good = target[0] * 20 - 10
    logits = torch.stack([torch.stack([-good, good, torch.zeros(16, 16)])] * 2).requires_grad_(True)
    iou_pred = torch.full((2, 3), 0.5, requires_grad=True)
    loss, ious = min_over_candidates(logits, iou_pred, target)
    per = mask_losses(logits, target)
    assert torch.allclose(ious[:, 1], torch.ones(2))
    expected = per[:, 1] + ((iou_pred - ious) ** 2).mean(1)
    assert torch.allclose(loss, expected)
    loss.sum().backward()
    assert logits.grad[:, 0].abs().sum() == 0 and logits.grad[:, 2].abs().sum() == 0
    assert logits.grad[:, 1].abs().sum() > 0


def test_training_decode_equals_exported_graph() -> None:
    """Full frame, offset 0: our prompt embedding + decoder equals the ONNX wrapper's forward."""
    torch.manual_seed(0)
    sam = build_bootstrap_sam().eval()
    emb = torch.randn(1, 256, 64, 64)
    coords = torch.tensor([[[100.0, 200.0], [300.0, 50.0], [0.0, 0.0]]])
    labels = torch.tensor([[1.0, 0.0, -1.0]])
    mask_in = torch.randn(1, 1, 256, 256)
    with torch.no_grad():
        ref_masks, ref_iou = DecoderOnnxModel(sam)(emb, coords, labels, mask_in, torch.tensor([1.0]))
        pe = window_pe(sam, torch.zeros(1, 2, dtype=torch.long), 64)
        dense = embed_masks(sam, mask_in, torch.ones(1), 64)
        masks, iou = decode(sam, emb, pe, embed_points(sam, coords, labels), dense)
    assert torch.allclose(masks, ref_masks, atol=1e-4) and torch.allclose(iou, ref_iou, atol=1e-5)
    assert torch.equal(window_pe(sam, torch.tensor([[32, 16]]), 4)[0], pe[0, :, 1:5, 2:6])


def test_crop_dataset_items() -> None:
    ds = CropDataset(synthetic_samples(), AugmentConfig(crop=64, gt_res=32, max_masks=3, paste=1.0), seed=1)
    for i in range(6):
        item = ds[i]
        assert item["image"].shape == (3, 64, 64) and item["masks"].shape == (3, 32, 32)
        assert item["valid"].any() and item["offset"].remainder(16).eq(0).all()
        assert item["offset"].max() <= 1024 - 64
        assert set(item["masks"].unique().tolist()) <= {0.0, 1.0}


def test_uint8_items_normalise_to_the_float_items() -> None:
    cfg = AugmentConfig(crop=64, gt_res=32, max_masks=2, full_frame=True, zoom=(1.5, 2.0))
    ref = CropDataset(synthetic_samples(), cfg, seed=3)[1]
    raw = CropDataset(synthetic_samples(), replace(cfg, uint8=True), seed=3)[1]
    assert raw["image_u8"].dtype == torch.uint8 and "image" not in raw
    batch = {k: v[None] for k, v in raw.items()}
    assert torch.allclose(normalized_images(batch)[0], ref["image"], atol=1e-5)
    assert torch.equal(raw["masks"], ref["masks"])


def test_full_frame_items_and_synthetic_shapes() -> None:
    cfg = AugmentConfig(crop=64, gt_res=32, max_masks=2, full_frame=True)
    item = CropDataset(synthetic_samples(), cfg, seed=2)[0]
    assert item["offset"].tolist() == [0, 0] and bool(item["frame"])
    syn = SyntheticShapes(length=4, crop=64, gt_res=32, max_masks=3)[1]
    assert syn["image"].shape == (3, 64, 64) and syn["masks"].shape == (3, 32, 32) and syn["valid"].any()


def test_bf16_autocast_only_where_it_is_fast() -> None:
    from annotator_backend.fast_encoder import cpu_has_native_bf16
    from annotator_backend.training.loop import uses_bf16

    assert uses_bf16(TrainConfig()) == cpu_has_native_bf16()  # emulated bf16 is ~2x slower
    assert uses_bf16(TrainConfig(bf16=True)) and not uses_bf16(TrainConfig(bf16=False))
    assert uses_bf16(TrainConfig(device="cuda"))


def test_align_attention_init_ties_query_and_key() -> None:
    sam = build_bootstrap_sam()
    align_attention_init(sam)
    attn = sam.mask_decoder.transformer.layers[0].cross_attn_image_to_token
    assert torch.equal(attn.q_proj.weight, attn.k_proj.weight)


def _tiny_cfg(tmp: Path, steps: int, **kw) -> TrainConfig:
    return TrainConfig(
        steps=steps,
        batch_images=2,
        workers=0,
        warmup=1,
        ckpt_dir=tmp,
        bf16=False,
        session=SessionConfig(clicks=2, refine=1, grad_passes=2),
        **kw,
    )


def test_train_step_checkpoints_and_resumes(tmp_path: Path) -> None:
    torch.manual_seed(0)
    ds = CropDataset(synthetic_samples(), AugmentConfig(crop=64, gt_res=32, max_masks=2, full_frame=True))
    seen = []
    sam = build_bootstrap_sam()
    before = sam.image_encoder.stem[0][0].weight.clone()
    out = train(sam, ds, _tiny_cfg(tmp_path, 2), progress=seen.append)
    assert out["steps"] == 2 and (tmp_path / "last.pt").is_file()
    assert [p.step for p in seen] == [1, 2] and seen[-1].total == 2 and np.isfinite(seen[-1].loss)
    assert not torch.equal(before, sam.image_encoder.stem[0][0].weight)
    state = torch.load(tmp_path / "last.pt", weights_only=False)
    assert state["step"] == 2
    seen.clear()
    out = train(build_bootstrap_sam(), ds, _tiny_cfg(tmp_path, 3), progress=seen.append)
    assert out["steps"] == 3 and [p.step for p in seen] == [3]


def test_decoder_mode_freezes_encoder(tmp_path: Path) -> None:
    torch.manual_seed(0)
    sam = build_bootstrap_sam()
    ds = EmbeddingDataset(synthetic_samples(1, size=48), sam, max_masks=2, cache_dir=tmp_path / "emb")
    assert len(ds) == 2 and ds[0]["embedding"].shape == (256, 64, 64)  # image + its mirror
    assert torch.equal(ds[0]["masks"].sum((1, 2)).sort().values, ds[1]["masks"].sum((1, 2)).sort().values)
    enc = {k: v.clone() for k, v in sam.image_encoder.state_dict().items()}
    dec = sam.mask_decoder.output_upscaling[0].weight.clone()
    train(sam, ds, _tiny_cfg(tmp_path / "ck", 1, mode="decoder", ema=0.0))
    assert all(torch.equal(v, sam.image_encoder.state_dict()[k]) for k, v in enc.items())
    assert not torch.equal(dec, sam.mask_decoder.output_upscaling[0].weight)


def test_decoder_sessions_decode_as_the_page_with_edge_snapping(tmp_path: Path, monkeypatch) -> None:
    """With guides, every pass snaps what the page would show: all four candidates of the first
    pass (one of them is picked), then the single output of each corrective pass."""
    from annotator_backend.training import simulate

    torch.manual_seed(0)
    sam = build_bootstrap_sam()
    ds = EmbeddingDataset(synthetic_samples(1, size=48), sam, max_masks=2, guides=True)
    item = ds[1]  # the mirror
    assert item["colors"].shape == (3, 256, 256) and item["extent"].tolist() == [192, 256]
    assert torch.equal(item["colors"], ds[0]["colors"].flip(-1))  # the mirror's own guide
    shapes: list[tuple[int, ...]] = []

    def counted(logits: torch.Tensor, guide) -> torch.Tensor:  # noqa: ANN001
        shapes.append(tuple(logits.shape[:2]))
        return real(logits, guide)

    real = simulate.snap
    monkeypatch.setattr(simulate, "snap", counted)
    cfg = replace(_tiny_cfg(tmp_path, 1, mode="decoder", ema=0.0).session, edge_snap=True)
    train(sam, ds, replace(_tiny_cfg(tmp_path, 1, mode="decoder", ema=0.0), session=cfg))
    m = shapes[0][0]
    assert shapes[0] == (m, 4) and len(shapes) >= 2 and all(s == (m, 1) for s in shapes[1:])
    shapes.clear()
    plain = replace(cfg, edge_snap=False)  # the switch: no snapping, guides or not
    train(sam, ds, replace(_tiny_cfg(tmp_path / "b", 1, mode="decoder", ema=0.0), session=plain))
    assert shapes == []


def test_embedding_dataset_drops_small_masks_and_empty_images() -> None:
    sam = build_bootstrap_sam()
    samples = synthetic_samples(2, size=96)
    areas = [[float(frame_mask(m).float().mean()) for m in s.load()[1]] for s in samples]
    cut = float(np.median([a for row in areas for a in row]))
    ds = EmbeddingDataset(samples, sam, max_masks=2, flip=False, min_area=cut)
    kept = [[a for a in row if a >= cut] for row in areas]
    assert len(ds) == sum(1 for row in kept if row)
    assert [int(it["valid"].sum()) for it in ds] == [len(row) for row in kept if row]
    assert len(EmbeddingDataset(samples, sam, flip=False, min_area=1.0)) == 0


def test_zoomed_crop_keeps_aspect_and_its_object() -> None:
    image = np.zeros((60, 80, 3), dtype=np.uint8)
    obj = np.zeros((60, 80), dtype=bool)
    obj[40:50, 60:75] = True  # near the bottom-right corner
    for seed in range(5):
        crop, (c_obj, c_rest) = zoomed_crop(image, [obj, ~obj], random.Random(seed))
        h, w = crop.shape[:2]
        assert 30 <= h <= 47 and abs(w / h - 80 / 60) < 0.05  # 1.3-2x, aspect kept
        assert c_obj.shape == (h, w) and c_rest.sum() == h * w - c_obj.sum()  # cropped alike
    crop, (c_obj,) = zoomed_crop(image, [obj], random.Random(0))
    assert c_obj.sum() == obj.sum()  # the chosen object stays whole
    ds = EmbeddingDataset(synthetic_samples(1, size=48), build_bootstrap_sam(), max_masks=2, zoom_frames=1)
    assert len(ds) == 3  # image, mirror, one crop


DDP_SCRIPT = """
import json, sys, torch, torch.distributed as dist
from pathlib import Path
sys.path.insert(0, {repo!r})
from tests.test_training import synthetic_samples, _tiny_cfg
from annotator_backend.sam_factory import build_bootstrap_sam
from annotator_backend.training import AugmentConfig, CropDataset, train
torch.set_num_threads(1)
torch.manual_seed(dist_rank := int(__import__("os").environ["RANK"]))  # different init per rank
ds = CropDataset(synthetic_samples(), AugmentConfig(crop=64, gt_res=32, max_masks=2), seed=dist_rank)
sam = build_bootstrap_sam()
out = train(sam, ds, _tiny_cfg(Path({ckpt!r}), 2, ema=0.0))
w = torch.cat([p.detach().flatten() for p in sam.parameters()])
ws = [torch.zeros_like(w) for _ in range(2)]
dist.all_gather(ws, w)
if dist.get_rank() == 0:
    Path({result!r}).write_text(json.dumps({{"world": out["world_size"], "same": bool(torch.equal(*ws))}}))
dist.destroy_process_group()
"""


def test_ddp_two_gloo_processes(tmp_path: Path) -> None:
    script = tmp_path / "ddp_train.py"
    result = tmp_path / "result.json"
    script.write_text(
        textwrap.dedent(DDP_SCRIPT).format(repo=str(REPO), ckpt=str(tmp_path / "ck"), result=str(result))
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script)]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(result.read_text())
    assert res == {"world": 2, "same": True}  # DDP broadcast the initial weights and averaged gradients
    assert (tmp_path / "ck" / "last.pt").is_file()


@pytest.mark.skipif(not (DATASETS / "grabcut").is_dir(), reason=f"shared datasets not found at {DATASETS}")
def test_folder_samples_on_shared_layout() -> None:
    samples = folder_samples(DATASETS / "coco128_panoptic")[:2]
    assert samples and all(len(s.masks) >= 1 for s in samples)
    img, masks = samples[0].load()
    assert all(m.shape == img.shape[:2] and m.dtype == bool and m.any() for m in masks)
