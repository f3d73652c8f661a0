"""The exported decoder matches the official decoder on the same weights (vit_b, random weights);
the quantized variant stays close to it; the official export (benchmark anchor) keeps its format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from segment_anything.utils.onnx import SamOnnxModel

from annotator_backend.decoding import OnnxDecoder, Prompt, mask_from_logits
from annotator_backend.model_registry import decoder_file, ensure_onnx
from annotator_backend.models import ModelVersion
from annotator_backend.onnx_export import (
    GRAPH_VERSION,
    INPUT_NAMES,
    OFFICIAL_OUTPUT_NAMES,
    OUTPUT_NAMES,
    export_decoder,
    export_official,
    graph_version,
)

W, H = 640, 480
PROMPTS = {
    "point": Prompt([(320.0, 240.0)], [1]),
    "negative point": Prompt([(320.0, 240.0), (100.5, 50.25)], [1, 0]),
    "box": Prompt([], [], box=(100.0, 80.0, 500.0, 400.0)),
    "box+point": Prompt([(300.0, 200.0)], [0], box=(100.0, 80.0, 500.0, 400.0)),
}


@pytest.fixture(scope="module")
def exported(vit_b_model, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: ANN001
    return export_decoder(vit_b_model, tmp_path_factory.mktemp("onnx") / "decoder.onnx")


def _cases() -> list[tuple[str, Prompt, np.ndarray | None]]:
    """The parity prompt set: every prompt of PROMPTS, and the negative point with a mask input."""
    mask = np.random.default_rng(0).standard_normal((256, 256)).astype(np.float32) * 4
    return [(n, p, None) for n, p in PROMPTS.items()] + [("mask input", PROMPTS["negative point"], mask)]


def _official(model, emb, coords, labels, mask_input, has_mask):  # noqa: ANN001, ANN202
    """SamOnnxModel's prompt embedding + mask_decoder.predict_masks, in PyTorch."""
    ref = SamOnnxModel(model, return_single_mask=False)
    with torch.no_grad():
        sparse = ref._embed_points(torch.from_numpy(coords), torch.from_numpy(labels))
        dense = ref._embed_masks(torch.from_numpy(mask_input), torch.tensor([has_mask], dtype=torch.float32))
        masks, iou = model.mask_decoder.predict_masks(
            image_embeddings=torch.from_numpy(emb),
            image_pe=model.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
        )
    return masks[0].numpy(), iou[0].numpy()


def test_graph_follows_the_contract(exported: Path) -> None:
    graph = onnx.load(str(exported)).graph
    assert [i.name for i in graph.input] == INPUT_NAMES
    assert [o.name for o in graph.output] == OUTPUT_NAMES
    ops = {n.op_type for n in graph.node}
    assert "Resize" not in ops, "no upsampling inside the graph"


@pytest.mark.parametrize("name", [*PROMPTS, "mask input"])
def test_parity_with_official_decoder(vit_b_model, exported: Path, name: str) -> None:  # noqa: ANN001
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((1, 256, 64, 64)).astype(np.float32)
    decoder = OnnxDecoder(exported)
    prompt = PROMPTS.get(name, PROMPTS["negative point"])
    coords, labels = prompt.model_inputs(W, H)
    mask_input = np.zeros((1, 1, 256, 256), np.float32)
    has = 0.0
    if name == "mask input":
        mask_input = rng.standard_normal((1, 1, 256, 256)).astype(np.float32) * 4
        has = 1.0
    got_masks, got_iou = decoder.run(emb, coords, labels, mask_input if has else None)
    ref_masks, ref_iou = _official(vit_b_model, emb, coords, labels, mask_input, has)
    assert got_masks.shape == (4, 256, 256) and got_iou.shape == (4,)
    assert np.abs(got_masks - ref_masks).max() <= 1e-3
    assert np.abs(got_iou - ref_iou).max() <= 1e-3


def test_points_match_the_official_prompt_encoder(vit_b_model, exported: Path) -> None:  # noqa: ANN001
    """Our explicit padding point equals what `PromptEncoder` adds for point-only prompts."""
    emb = np.random.default_rng(1).standard_normal((1, 256, 64, 64)).astype(np.float32)
    prompt = PROMPTS["negative point"]
    coords, labels = prompt.model_inputs(W, H)
    got, _ = OnnxDecoder(exported).run(emb, coords, labels)
    with torch.no_grad():
        sparse, dense = vit_b_model.prompt_encoder(
            points=(torch.from_numpy(coords[:, :-1]), torch.from_numpy(labels[:, :-1])),
            boxes=None,
            masks=None,
        )
        ref, _ = vit_b_model.mask_decoder.predict_masks(
            torch.from_numpy(emb), vit_b_model.prompt_encoder.get_dense_pe(), sparse, dense
        )
    assert np.abs(got - ref[0].numpy()).max() <= 1e-3


def test_quantized_decoder_stays_close(exported: Path, vit_b_checkpoint: Path) -> None:
    """DECODER_QUANTIZED's file: same contract, masks (all four outputs, thresholded at image
    size) at IoU >= 0.97 to the fp32 decoder's over the parity prompt set."""
    version = ModelVersion(onnx_path=str(exported), checkpoint_path=str(vit_b_checkpoint))
    quantized = decoder_file(version, "int8")
    assert quantized.name == "decoder.int8.onnx" and quantized.stat().st_size < exported.stat().st_size
    graph = onnx.load(str(quantized)).graph
    assert [i.name for i in graph.input] == INPUT_NAMES and [o.name for o in graph.output] == OUTPUT_NAMES
    assert any(n.op_type in ("MatMulInteger", "DynamicQuantizeMatMul") for n in graph.node)
    emb = np.random.default_rng(2).standard_normal((1, 256, 64, 64)).astype(np.float32)
    fp32, int8 = OnnxDecoder(exported), OnnxDecoder(quantized)
    for name, prompt, mask in _cases():
        coords, labels = prompt.model_inputs(W, H)
        want, _ = fp32.run(emb, coords, labels, mask)
        got, _ = int8.run(emb, coords, labels, mask)
        for k in range(4):
            a, b = mask_from_logits(want[k], W, H), mask_from_logits(got[k], W, H)
            score = (a & b).sum() / max(1, (a | b).sum())
            assert score >= 0.97, (name, k, score)


def test_stale_decoder_is_exported_again(exported: Path, vit_b_checkpoint: Path, tmp_path: Path) -> None:
    """A decoder file from before the current graph (no `graph` metadata) is replaced."""
    old = onnx.load(str(exported))
    del old.metadata_props[:]
    path = tmp_path / "decoder.onnx"
    onnx.save(old, str(path))
    assert graph_version(path) is None
    version = ModelVersion(arch="vit_b", onnx_path=str(path), checkpoint_path=str(vit_b_checkpoint))
    assert ensure_onnx(version) == path and graph_version(path) == GRAPH_VERSION


def test_official_export_keeps_its_format(vit_b_model, tmp_path: Path) -> None:  # noqa: ANN001
    """The benchmark anchor: official inputs (orig_im_size) and outputs, upscaled in the graph,
    dynamically quantized."""
    import onnxruntime as ort

    path = export_official(vit_b_model, tmp_path / "official.onnx")
    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == [*INPUT_NAMES, "orig_im_size"]
    assert [o.name for o in graph.output] == OFFICIAL_OUTPUT_NAMES
    assert {"Resize", "DynamicQuantizeLinear"} <= {n.op_type for n in graph.node}
    coords, labels = PROMPTS["point"].model_inputs(W, H)
    feeds = {
        "image_embeddings": np.zeros((1, 256, 64, 64), np.float32),
        "point_coords": coords,
        "point_labels": labels,
        "mask_input": np.zeros((1, 1, 256, 256), np.float32),
        "has_mask_input": np.zeros(1, np.float32),
        "orig_im_size": np.array([H, W], np.float32),
    }
    masks, iou, low = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)
    assert masks.shape == (1, 1, H, W) and iou.shape == (1, 1) and low.shape == (1, 1, 256, 256)


def _split_sessions(exported: Path, checkpoint: Path, quantized: bool = False) -> tuple:
    """onnxruntime sessions on the page's graphs: per image, per click, per click without a
    mask input (the per-click ones quantized if `quantized`)."""
    import onnxruntime as ort

    version = ModelVersion(onnx_path=str(exported), checkpoint_path=str(checkpoint))
    variants = ["prepare", "split", "nomask"]
    variants[1:] = [f"{v}_int8" for v in variants[1:]] if quantized else variants[1:]
    paths = [decoder_file(version, v) for v in variants]
    assert [p.name for p in paths] == [f"decoder.{v}.onnx" for v in variants]
    return tuple(ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for p in paths)


def _split_run(
    sessions: tuple, emb: np.ndarray, prompt: Prompt, mask: np.ndarray | None, graph: str = "page"
) -> tuple:
    """The page's steps: the per-image graph, then the per-click one, or without a mask input
    the one made for that (`graph` "split" forces the first); (masks, iou, mask_input)."""
    from annotator_backend.decoder_split import PREPARED_NAMES

    prepare, split, no_mask = sessions
    image = dict(zip(PREPARED_NAMES, prepare.run(None, {"image_embeddings": emb}), strict=True))
    coords, labels = prompt.model_inputs(W, H)
    mask_input = np.zeros((1, 1, 256, 256), np.float32) if mask is None else mask[None, None]
    feeds = {**image, "point_coords": coords, "point_labels": labels}
    if mask is None and graph == "page":
        masks, iou = no_mask.run(None, feeds)
        return masks[0], iou[0], mask_input
    has_mask = np.array([0.0 if mask is None else 1.0], np.float32)
    masks, iou = split.run(None, {**feeds, "mask_input": mask_input, "has_mask_input": has_mask})
    return masks[0], iou[0], mask_input


def test_split_decoder_matches_the_official_decoder(
    vit_b_model, exported: Path, vit_b_checkpoint: Path
) -> None:  # noqa: ANN001
    """What the annotate page runs: the per-image graph once, then a per-click graph, gives
    the official decoder's outputs (to 1e-3) over the parity prompt set, mask input included;
    without a mask input both per-click graphs do, the page's (no mask inputs) and the other."""
    from annotator_backend.decoder_split import PREPARED_NAMES

    sessions = _split_sessions(exported, vit_b_checkpoint)
    assert [o.name for o in sessions[0].get_outputs()] == PREPARED_NAMES
    assert [i.name for i in sessions[1].get_inputs()] == PREPARED_NAMES + INPUT_NAMES[1:]
    assert [i.name for i in sessions[2].get_inputs()] == PREPARED_NAMES + INPUT_NAMES[1:3]
    for s in sessions[1:]:
        assert [o.name for o in s.get_outputs()] == OUTPUT_NAMES
    emb = np.random.default_rng(3).standard_normal((1, 256, 64, 64)).astype(np.float32)
    for name, prompt, mask in _cases():
        coords, labels = prompt.model_inputs(W, H)
        for graph in ("page", "split") if mask is None else ("page",):
            got_masks, got_iou, mask_input = _split_run(sessions, emb, prompt, mask, graph)
            has = 0.0 if mask is None else 1.0
            ref_masks, ref_iou = _official(vit_b_model, emb, coords, labels, mask_input, has)
            assert np.abs(got_masks - ref_masks).max() <= 1e-3, (name, graph)
            assert np.abs(got_iou - ref_iou).max() <= 1e-3, (name, graph)


def test_quantized_split_decoder_stays_close(exported: Path, vit_b_checkpoint: Path) -> None:
    """The page's decoder with DECODER_QUANTIZED=1: masks (all four, thresholded at image size)
    at IoU >= 0.97 to the fp32 split decoder's over the parity prompt set."""
    fp32 = _split_sessions(exported, vit_b_checkpoint)
    int8 = _split_sessions(exported, vit_b_checkpoint, quantized=True)
    for variant in ("split_int8", "nomask_int8"):
        graph = onnx.load(str(Path(exported).with_name(f"decoder.{variant}.onnx"))).graph
        assert any(n.op_type in ("MatMulInteger", "DynamicQuantizeMatMul") for n in graph.node)
    emb = np.random.default_rng(4).standard_normal((1, 256, 64, 64)).astype(np.float32)
    for name, prompt, mask in _cases():
        want = _split_run(fp32, emb, prompt, mask)[0]
        got = _split_run(int8, emb, prompt, mask)[0]
        for k in range(4):
            a, b = mask_from_logits(want[k], W, H), mask_from_logits(got[k], W, H)
            score = (a & b).sum() / max(1, (a | b).sum())
            assert score >= 0.97, (name, k, score)
