"""Model architecture names and the checkpoint error, without importing torch (the CLI starts fast)."""

from __future__ import annotations

SAM_ARCHS = ("vit_b", "vit_l", "vit_h")
ARCHS = (*SAM_ARCHS, "bootstrap")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: corrupt, not a state dict, or the wrong architecture."""
