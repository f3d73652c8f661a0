"""Export SAM's prompt encoder + mask decoder to ONNX under the contract of DESIGN.md §3."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from segment_anything.modeling import Sam
from segment_anything.utils.onnx import SamOnnxModel

INPUT_NAMES = ["image_embeddings", "point_coords", "point_labels", "mask_input", "has_mask_input"]
OUTPUT_NAMES = ["low_res_masks", "iou_predictions"]
OPSET = 17


class DecoderOnnxModel(SamOnnxModel):
    """The official `SamOnnxModel` prompt embedding and decoder, without upsampling.

    Returns all four masks of `mask_decoder.predict_masks`: index 0 the single-mask output,
    1..3 the multimask outputs.
    """

    def __init__(self, model: Sam) -> None:
        super().__init__(model, return_single_mask=False)

    @torch.no_grad()
    def forward(  # type: ignore[override]
        self,
        image_embeddings: torch.Tensor,  # [1, 256, 64, 64]
        point_coords: torch.Tensor,  # [1, N, 2] in the resized-1024 frame
        point_labels: torch.Tensor,  # [1, N]
        mask_input: torch.Tensor,  # [1, 1, 256, 256]
        has_mask_input: torch.Tensor,  # [1]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        sparse = self._embed_points(point_coords, point_labels)
        dense = self._embed_masks(mask_input, has_mask_input)
        masks, iou = self.model.mask_decoder.predict_masks(
            image_embeddings=image_embeddings,
            image_pe=self.model.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
        )
        return masks, iou  # [1, 4, 256, 256], [1, 4]


def dummy_inputs(num_points: int = 5) -> dict[str, torch.Tensor]:
    """Inputs of the contract's shapes, for tracing and smoke tests."""
    return {
        "image_embeddings": torch.randn(1, 256, 64, 64),
        "point_coords": torch.randint(0, 1024, (1, num_points, 2), dtype=torch.float),
        "point_labels": torch.randint(0, 4, (1, num_points), dtype=torch.float),
        "mask_input": torch.randn(1, 1, 256, 256),
        "has_mask_input": torch.tensor([1.0]),
    }


def export_decoder(model: Sam, out: Path) -> Path:
    """Write the decoder of `model` to `out` as ONNX (opset 17, fp32, dynamic point count)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    wrapper = DecoderOnnxModel(model).eval()
    inputs = dummy_inputs()
    tmp = out.with_suffix(out.suffix + ".tmp")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=UserWarning)
        torch.onnx.export(
            wrapper,
            tuple(inputs.values()),
            str(tmp),
            input_names=INPUT_NAMES,
            output_names=OUTPUT_NAMES,
            dynamic_axes={"point_coords": {1: "num_points"}, "point_labels": {1: "num_points"}},
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    tmp.replace(out)
    return out
