"""Export SAM's prompt encoder + mask decoder to ONNX under the contract of DESIGN.md §3.

Three files can be made from one model:

* `export_decoder`: the served decoder (fp32), the fast graph of `decoder_graph`;
* `quantize_decoder`: a dynamically quantized (uint8 weights) copy of it, served when
  `DECODER_QUANTIZED=1` (a setting, never a silent replacement). Only the image-side
  matmuls are quantized (`image_side_matmuls`): quantizing the prompt-token ones too saves
  no time and costs accuracy (IoU to fp32 0.96 instead of 0.98 with random weights);
* `export_official`: the official demo's decoder, exactly as segment-anything's
  scripts/export_onnx_model.py makes it (`SamOnnxModel(return_single_mask=True)`, in-graph
  upscaling to `orig_im_size`) and quantized as the demo ships it: the benchmarks' anchor.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import onnx
import torch
from segment_anything.modeling import Sam
from segment_anything.utils.onnx import SamOnnxModel

from .decoder_graph import FastDecoderModel
from .decoder_split import PREPARED_NAMES, NoMaskDecoderModel, PrepareModel, SplitDecoderModel

INPUT_NAMES = ["image_embeddings", "point_coords", "point_labels", "mask_input", "has_mask_input"]
OUTPUT_NAMES = ["low_res_masks", "iou_predictions"]
OFFICIAL_OUTPUT_NAMES = ["masks", "iou_predictions", "low_res_masks"]
OPSET = 17
# Written into the file's metadata; a decoder file without it (or older) is exported again.
GRAPH_VERSION = "fast-1"
DYNAMIC_AXES = {"point_coords": {1: "num_points"}, "point_labels": {1: "num_points"}}


class DecoderOnnxModel(SamOnnxModel):
    """The official `SamOnnxModel` prompt embedding and decoder, without upsampling: the
    reference that `FastDecoderModel` computes faster.

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


def _export(module: torch.nn.Module, inputs: dict, out: Path, output_names: list[str], meta: dict) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=UserWarning)
        torch.onnx.export(
            module,
            tuple(inputs.values()),
            str(tmp),
            input_names=list(inputs),
            output_names=output_names,
            dynamic_axes=DYNAMIC_AXES,
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    proto = onnx.load(str(tmp))
    onnx.helper.set_model_props(proto, meta)
    onnx.save(proto, str(tmp))
    tmp.replace(out)
    return out


def export_decoder(model: Sam, out: Path) -> Path:
    """Write the decoder of `model` to `out` as ONNX (opset 17, fp32, dynamic point count)."""
    return _export(
        FastDecoderModel(model).eval(), dummy_inputs(), out, OUTPUT_NAMES, {"graph": GRAPH_VERSION}
    )


def export_split(model: Sam, prepare_out: Path, decode_out: Path, no_mask_out: Path) -> tuple[Path, ...]:
    """Write the decoder split for the browser (`decoder_split`): the per-image graph
    (image_embeddings -> image_tokens, keys, values, queries), the per-click graph (those four
    and the contract's prompt inputs -> the contract's outputs) and the per-click graph for
    prompts without a mask input (the four and the points -> the same outputs)."""
    prepare = PrepareModel(model).eval()
    emb = dummy_inputs()["image_embeddings"]
    meta = {"graph": GRAPH_VERSION + "-prepare"}
    _export(prepare, {"image_embeddings": emb}, prepare_out, PREPARED_NAMES, meta)
    prepared = dict(zip(PREPARED_NAMES, prepare(emb), strict=True))
    prompts = {k: v for k, v in dummy_inputs().items() if k != "image_embeddings"}
    meta = {"graph": GRAPH_VERSION + "-split"}
    _export(SplitDecoderModel(model).eval(), {**prepared, **prompts}, decode_out, OUTPUT_NAMES, meta)
    points = {k: prompts[k] for k in ("point_coords", "point_labels")}
    meta = {"graph": GRAPH_VERSION + "-nomask"}
    _export(NoMaskDecoderModel(model).eval(), {**prepared, **points}, no_mask_out, OUTPUT_NAMES, meta)
    return Path(prepare_out), Path(decode_out), Path(no_mask_out)


def graph_version(path: Path) -> str | None:
    """The `graph` metadata of a decoder file (None for files exported before it existed)."""
    proto = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in proto.metadata_props}.get("graph")


def image_side_matmuls(path: Path) -> list[str]:
    """MatMul nodes with a weight operand and an image-sized output (4096+ rows, 2-D): in the
    fast graph the two output-upscaling matmuls, which hold most of the weight-bound work."""
    proto = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    dims = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in proto.graph.value_info}
    weights = {i.name for i in proto.graph.initializer}
    return [
        n.name
        for n in proto.graph.node
        if n.op_type == "MatMul"
        and n.input[1] in weights
        and len(dims.get(n.output[0], [])) == 2
        and dims[n.output[0]][0] >= 4096
    ]


def quantize_decoder(src: Path, out: Path, nodes: list[str] | None = None) -> Path:
    """Dynamic quantization (uint8 weights, as the official demo's decoder) of the MatMuls
    `nodes` of an ONNX file (None: all of them, as the official demo)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out = Path(out)
    tmp = out.with_suffix(out.suffix + ".tmp")
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # quantize_dynamic logs a pre-processing hint at WARNING
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_dynamic(
                str(src),
                str(tmp),
                per_channel=False,
                reduce_range=False,
                weight_type=QuantType.QUInt8,
                nodes_to_quantize=nodes,
            )
    finally:
        root.setLevel(level)
    tmp.replace(out)
    return out


def export_official(model: Sam, out: Path, quantize: bool = True) -> Path:
    """The official demo's decoder (benchmark anchor): `SamOnnxModel(return_single_mask=True)`
    with `orig_im_size`, outputs masks (upscaled in the graph), iou_predictions,
    low_res_masks; dynamically quantized unless `quantize` is False."""
    embed = model.prompt_encoder.embed_dim
    size = model.prompt_encoder.image_embedding_size
    inputs = {
        "image_embeddings": torch.randn(1, embed, *size),
        "point_coords": torch.randint(0, 1024, (1, 5, 2), dtype=torch.float),
        "point_labels": torch.randint(0, 4, (1, 5), dtype=torch.float),
        "mask_input": torch.randn(1, 1, *[4 * s for s in size]),
        "has_mask_input": torch.tensor([1.0]),
        "orig_im_size": torch.tensor([1500.0, 2250.0]),
    }
    wrapper = SamOnnxModel(model, return_single_mask=True).eval()
    out = Path(out)
    if not quantize:
        return _export(wrapper, inputs, out, OFFICIAL_OUTPUT_NAMES, {"graph": "official"})
    fp32 = _export(wrapper, inputs, out.with_name(out.stem + ".fp32.onnx"), OFFICIAL_OUTPUT_NAMES, {})
    try:
        return quantize_decoder(fp32, out)
    finally:
        fp32.unlink(missing_ok=True)
