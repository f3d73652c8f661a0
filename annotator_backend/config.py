"""Settings read from the environment (DESIGN.md §5)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Settings:
    """Where the data lives and which services to use."""

    data_dir: Path
    database_url: str
    redis_url: str | None
    secret_key: str
    port: int
    decoder_quantized: bool = False  # serve the dynamically quantized decoder (DECODER_QUANTIZED=1)
    encoder_precision: str = "auto"  # auto | bf16 | fp32 (fast_encoder.resolve_precision)

    @property
    def images_dir(self) -> Path:
        return self.data_dir / "images"

    @property
    def embeddings_dir(self) -> Path:
        return self.data_dir / "embeddings"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"


def load_settings() -> Settings:
    """Settings from `ANNOTATOR_DATA_DIR`, `DATABASE_URL`, `REDIS_URL`, `SECRET_KEY`, `PORT`,
    `ENCODER_PRECISION`, `DECODER_QUANTIZED`."""
    data_dir = Path(os.environ.get("ANNOTATOR_DATA_DIR", REPO_ROOT / "instance" / "data")).resolve()
    default_db = f"sqlite:///{data_dir.parent / 'annotator.sqlite3'}"
    return Settings(
        data_dir=data_dir,
        database_url=os.environ.get("DATABASE_URL") or default_db,
        redis_url=os.environ.get("REDIS_URL") or None,
        secret_key=os.environ.get("SECRET_KEY") or _persistent_secret(data_dir),
        port=int(os.environ.get("PORT", "5000")),
        decoder_quantized=os.environ.get("DECODER_QUANTIZED", "").strip().lower() in ("1", "true", "yes"),
        encoder_precision=os.environ.get("ENCODER_PRECISION", "auto"),
    )


def _persistent_secret(data_dir: Path) -> str:
    """A random secret kept beside the data so that sessions survive restarts."""
    path = data_dir.parent / "secret_key"
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = os.urandom(32).hex()
    path.write_text(secret)
    path.chmod(0o600)
    return secret
