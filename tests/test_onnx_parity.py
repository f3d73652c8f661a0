"""The exported decoder matches the official decoder on the same weights (vit_b, random weights)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from segment_anything.utils.onnx import SamOnnxModel

from annotator_backend.decoding import OnnxDecoder, Prompt
from annotator_backend.onnx_export import INPUT_NAMES, OUTPUT_NAMES, export_decoder

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
