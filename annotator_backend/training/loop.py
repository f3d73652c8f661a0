"""The training loop: simulated sessions, AdamW, cosine schedule, checkpoints, progress, DDP.

Modes: ``"full"`` trains the image encoder with the decoder on augmented windows (items of
`data.CropDataset`); ``"decoder"`` freezes the encoder and trains the prompt encoder and mask
decoder on cached embeddings (items of `embeddings.EmbeddingDataset`).

Budgets: a step budget, a time budget (minutes of training, kept across resumes), or both (the
first reached ends the run); the learning rate follows a cosine over whichever is further along.
A checkpoint ``last.pt`` (model, EMA, optimiser, step, elapsed time) is written every few minutes
and at the end; ``train`` resumes from it. Under ``torchrun`` (``WORLD_SIZE > 1``) it initialises
``torch.distributed`` from the environment (gloo) and wraps the session in
`DistributedDataParallel`; rank 0 checkpoints and reports progress.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from segment_anything.modeling import Sam
from torch import nn

from ..fast_encoder import resolve_precision
from .data import normalized_images
from .simulate import SessionConfig, run_session
from .snap import SnapGuide

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Settings of one training run."""

    mode: str = "full"  # "full" or "decoder"
    steps: int | None = None  # step budget
    minutes: float | None = None  # time budget (training time, summed over resumes)
    batch_images: int = 2  # images (windows) per step and process
    lr: float = 6e-4
    encoder_lr_mult: float = 1.0
    weight_decay: float = 0.05
    warmup: int = 150
    min_lr_frac: float = 0.05
    grad_clip: float = 1.0
    ema: float = 0.998  # weight EMA decay (0: off)
    # bfloat16 autocast of encoder and decoder; None: where it is fast (CUDA, or a CPU with native
    # bf16; emulated on other CPUs it made a simulated session about 2x slower than float32)
    bf16: bool | None = None
    device: str = "cpu"  # "cuda" trains on the GPU (one per process; the data stays on the CPU)
    ckpt_dir: Path | None = None
    ckpt_every_s: float = 180.0
    resume: bool = True
    workers: int = 1
    seed: int = 0
    log_every: int = 10
    align_init: bool = (
        False  # fresh runs: tie the decoder's attention q/k projections (see align_attention_init)
    )
    session: SessionConfig = field(default_factory=SessionConfig)


@dataclass
class Progress:
    """What a progress callback receives."""

    step: int
    total: int
    loss: float
    eta_s: float
    iou_first: float = 0.0
    iou_last: float = 0.0
    lr: float = 0.0


class SessionModel(nn.Module):
    """Wraps a `Sam` so one forward is one batch of simulated sessions (what DDP wraps)."""

    def __init__(self, sam: Sam, mode: str, session: SessionConfig, bf16: bool) -> None:
        super().__init__()
        self.sam = sam
        self.mode = mode
        self.session = session
        self.bf16 = bf16
        self.rng = random.Random(0)

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        dev = self.sam.mask_decoder.iou_token.weight.device
        batch = {k: v.to(dev, non_blocking=True) for k, v in batch.items()}
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=self.bf16):
            if "embedding" in batch:
                emb = batch["embedding"]
            else:
                emb = self.sam.image_encoder(normalized_images(batch)).float()
            guide = None
            if self.session.edge_snap and "colors" in batch:
                guide = SnapGuide.build(batch["colors"], batch["extent"])
            return run_session(
                self.sam,
                emb,
                batch["masks"],
                batch["valid"],
                batch["offset"],
                self.session,
                self.rng,
                full_frame="frame" in batch,
                guide=guide,
            )


def init_distributed() -> tuple[int, int]:
    """(rank, world size); initialises the gloo process group from the env under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def trainable_parameters(sam: Sam, mode: str) -> list[dict]:
    """Optimiser parameter groups of a mode (no weight decay on norms, biases and embeddings)."""
    if mode not in ("full", "decoder"):
        raise ValueError(f"unknown mode {mode!r}")
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, p in sam.named_parameters():
        is_enc = name.startswith("image_encoder.")
        p.requires_grad_(mode == "full" or not is_enc)
        if not p.requires_grad:
            continue
        decay = p.ndim >= 2 and "embed" not in name and "token" not in name
        groups.setdefault((is_enc, decay), []).append(p)
    return [{"params": v, "is_encoder": k[0], "decay": k[1]} for k, v in groups.items()]


def align_attention_init(sam: Sam, gain: float = 1.0, seed: int = 0) -> None:
    """Initialise each decoder attention with equal query and key projections.

    Then q.k starts as a (random-projected) dot product of the positional encodings of an image
    location and a prompt, which peaks where they coincide: a from-scratch decoder learns to
    localise prompts about 2.5x sooner (75 vs 175-200 steps in a box-prompt pilot).
    """
    g = torch.Generator().manual_seed(seed)
    for mod in sam.mask_decoder.transformer.modules():
        q, k = getattr(mod, "q_proj", None), getattr(mod, "k_proj", None)
        if isinstance(q, nn.Linear) and isinstance(k, nn.Linear) and q.weight.shape == k.weight.shape:
            with torch.no_grad():
                w = torch.randn(q.weight.shape, generator=g) * gain / q.weight.shape[1] ** 0.5
                q.weight.copy_(w)
                k.weight.copy_(w)


def uses_bf16(cfg: TrainConfig) -> bool:
    """Whether a run autocasts to bfloat16: as `cfg.bf16` says, or where that is fast."""
    if cfg.bf16 is not None:
        return cfg.bf16
    return resolve_precision("auto", torch.device(cfg.device)) == "bf16"


def lr_factor(progress: float, step: int, cfg: TrainConfig) -> float:
    """Linear warmup then cosine down to `min_lr_frac`."""
    warm = min(1.0, (step + 1) / max(1, cfg.warmup))
    cos = cfg.min_lr_frac + (1 - cfg.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return warm * cos


def _progress(step: int, elapsed: float, cfg: TrainConfig) -> float:
    parts = []
    if cfg.steps:
        parts.append(step / cfg.steps)
    if cfg.minutes:
        parts.append(elapsed / (cfg.minutes * 60))
    if not parts:
        raise ValueError("set a step budget, a time budget or both")
    return max(parts)


def save_checkpoint(path: Path, state: dict) -> None:
    """Write atomically (temporary file, then rename), so a kill never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def _loader(
    dataset: torch.utils.data.Dataset, cfg: TrainConfig, rank: int, round_: int
) -> torch.utils.data.DataLoader:
    from .data import worker_init

    g = torch.Generator()
    g.manual_seed(cfg.seed * 1000 + rank * 97 + round_)
    sampler = torch.utils.data.RandomSampler(dataset, replacement=True, num_samples=10**8, generator=g)
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=cfg.batch_images,
        sampler=sampler,
        num_workers=cfg.workers,
        worker_init_fn=worker_init,
        pin_memory=cfg.device != "cpu",
        persistent_workers=cfg.workers > 0,
        drop_last=True,
        prefetch_factor=4 if cfg.workers > 0 else None,
    )


def train(
    sam: Sam,
    dataset: torch.utils.data.Dataset,
    cfg: TrainConfig,
    progress: Callable[[Progress], None] | None = None,
) -> dict:
    """Train `sam` in place and return a summary (steps, minutes, last losses).

    `dataset` items: ``masks`` [K, R, R], ``valid`` [K], ``offset`` [2] and either ``image``
    [3, S, S] (full mode) or ``embedding`` [256, E, E] (decoder mode). `cfg.device` is where
    it trains; on return `sam` is back on its own device and holds the EMA weights when EMA is on.
    """
    rank, world = init_distributed()
    torch.manual_seed(cfg.seed + rank)
    home = next(sam.parameters()).device
    sam.to(cfg.device)
    if cfg.align_init:
        align_attention_init(sam, seed=cfg.seed)  # a resumed run overwrites it below
    groups = trainable_parameters(sam, cfg.mode)
    opt = torch.optim.AdamW(
        [
            {
                "params": g["params"],
                "weight_decay": cfg.weight_decay if g["decay"] else 0.0,
                "lr_mult": cfg.encoder_lr_mult if g["is_encoder"] else 1.0,
            }
            for g in groups
        ],
        lr=cfg.lr,
    )
    step, elapsed, round_ = 0, 0.0, 0
    state: dict = {}
    ckpt = Path(cfg.ckpt_dir) / "last.pt" if cfg.ckpt_dir else None
    if ckpt is not None and cfg.resume and ckpt.is_file():
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        sam.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        step, elapsed, round_ = state["step"], state["elapsed"], state.get("round", 0) + 1
        log.info("resumed from %s at step %d (%.1f min)", ckpt, step, elapsed / 60)
    sam.train()
    if cfg.mode == "decoder":
        sam.image_encoder.eval()
    module = SessionModel(sam, cfg.mode, cfg.session, uses_bf16(cfg))
    module.rng = random.Random(cfg.seed * 7919 + rank * 31 + round_)
    net: nn.Module = module
    if world > 1:
        net = nn.parallel.DistributedDataParallel(module, find_unused_parameters=True)
    params = [p for g in groups for p in g["params"]]
    ema = copy.deepcopy(sam).eval() if cfg.ema > 0 else None  # after DDP's broadcast of rank 0's weights
    if ema is not None and state.get("ema") is not None:
        ema.load_state_dict(state["ema"])
    state.clear()

    def checkpoint() -> None:
        if ckpt is None or rank != 0:
            return
        save_checkpoint(
            ckpt,
            {
                "model": sam.state_dict(),
                "ema": ema.state_dict() if ema is not None else None,
                "optimizer": opt.state_dict(),
                "step": step,
                "elapsed": elapsed,
                "round": round_,
                "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()},
            },
        )

    loader = _loader(dataset, cfg, rank, round_)
    t_ckpt = time.monotonic()
    t_last = time.monotonic()
    avg: dict[str, float] = {}
    p = _progress(step, elapsed, cfg)
    for batch in loader:
        if p >= 1.0:
            break
        f = lr_factor(p, step, cfg)
        for g in opt.param_groups:
            g["lr"] = cfg.lr * f * g["lr_mult"]
        loss, stats = net(batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt.step()
        if ema is not None:
            with torch.no_grad():
                d = min(cfg.ema, (1 + step) / (10 + step))
                for e, s in zip(ema.state_dict().values(), sam.state_dict().values(), strict=True):
                    if e.dtype.is_floating_point:
                        e.lerp_(s, 1 - d)
                    else:
                        e.copy_(s)
        step += 1
        now = time.monotonic()
        elapsed += now - t_last
        t_last = now
        for k, v in {"loss": loss.item(), **stats}.items():
            avg[k] = v if k not in avg else 0.95 * avg[k] + 0.05 * v
        p = _progress(step, elapsed, cfg)
        if rank == 0:
            total = max(step, round(step / max(p, 1e-9)))
            eta = elapsed * (1 - p) / max(p, 1e-9)
            if progress is not None:
                progress(
                    Progress(
                        step,
                        total,
                        avg["loss"],
                        eta,
                        avg.get("iou_first", 0.0),
                        avg.get("iou_last", 0.0),
                        cfg.lr * f,
                    )
                )
            if step % cfg.log_every == 0:
                log.info(
                    "step %d/%d loss %.4f iou1 %.3f iouN %.3f lr %.2e %.2fs/step eta %.0fs",
                    step,
                    total,
                    avg["loss"],
                    avg.get("iou_first", 0.0),
                    avg.get("iou_last", 0.0),
                    cfg.lr * f,
                    elapsed / max(1, step),
                    eta,
                )
        if now - t_ckpt >= cfg.ckpt_every_s:
            checkpoint()
            t_ckpt = now
    checkpoint()
    if ema is not None:
        sam.load_state_dict(ema.state_dict())
    sam.to(home).eval()
    return {"steps": step, "minutes": elapsed / 60, "world_size": world, **avg}
