"""A real server and a real Chromium for end-to-end checks (browser tests and bench/).

The server is set up only through the CLI contract of DESIGN.md §5, in a throwaway
directory, then started with `annotator serve` as a subprocess.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

REPO_ROOT = Path(__file__).resolve().parents[2]
ANNOTATOR = Path(sys.executable).with_name("annotator")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "correct horse battery"
BENCH_CACHE = Path(tempfile.gettempdir()) / "sam-annotator-bench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_image(path: Path, width: int, height: int, rect: tuple[int, int, int, int]) -> Path:
    """A dark textured picture with one bright rectangle (x0, y0, x1, y1)."""
    rng = np.random.default_rng(width * 7 + height)
    arr = (rng.random((height, width, 3)) * 50).astype(np.uint8)
    x0, y0, x1, y1 = rect
    arr[y0:y1, x0:x1] = [240, 220, 60]
    path.parent.mkdir(parents=True, exist_ok=True)
    PILImage.fromarray(arr).save(path)
    return path


@dataclass
class Instance:
    root: Path
    port: int
    env: dict[str, str]
    projects: dict[str, int] = field(default_factory=dict)
    proc: subprocess.Popen | None = None
    log_path: Path | None = None
    timings: list[tuple[str, float]] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def db_url(self) -> str:
        return self.env["DATABASE_URL"]

    def cli(self, *args: str, stdin: str | None = None, timeout: float = 600) -> str:
        t0 = time.monotonic()
        res = subprocess.run(
            [str(ANNOTATOR), *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env,
            cwd=REPO_ROOT,
            timeout=timeout,
        )
        if res.returncode != 0:
            raise RuntimeError(
                f"annotator {' '.join(args)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}"
            )
        self.timings.append((" ".join(args[:2]), round(time.monotonic() - t0, 2)))
        return res.stdout

    def server_log(self) -> str:
        return (
            self.log_path.read_text(errors="replace")[-4000:]
            if self.log_path and self.log_path.exists()
            else ""
        )


def setup_instance(
    root: Path,
    checkpoint: Path | None,
    projects: dict[str, list[tuple[str, int, int, tuple]]],
    embed: list[str] | None = None,
    database_url: str | None = None,
) -> Instance:
    """Database, user `ann`, one project per entry (images: name, w, h, bright rect), the
    checkpoint imported as the active vit_b model, the projects in `embed` (default: all)
    embedded. A project left out whose images are byte-for-byte images of embedded ones gets
    their embedding files when the page first asks (no encoder run). With no checkpoint the
    bootstrap model that `db upgrade` registers stays active. `database_url` (default: a SQLite
    file in `root`) must name an empty database."""
    port = free_port()
    env = dict(os.environ)
    env.pop("REDIS_URL", None)
    env.update(
        DATABASE_URL=database_url or f"sqlite:///{root / 'db.sqlite3'}",
        ANNOTATOR_DATA_DIR=str(root / "data"),
        PORT=str(port),
        SECRET_KEY="browser-test-secret",
        PYTHONUNBUFFERED="1",
        # The repository first: an editable install made before app/ had an __init__.py
        # maps `app` to a namespace package.
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    )
    inst = Instance(root=root, port=port, env=env)
    inst.cli("db", "upgrade")
    inst.cli("user", "add", "ann", "--role", "annotator", "--password-stdin", stdin=PASSWORD + "\n")
    for name, images in projects.items():
        out = inst.cli("project", "create", name, "--categories", "a,b", "--members", "ann")
        inst.projects[name] = int(re.search(r"id (\d+)", out).group(1))
        folder = root / "images" / name
        for fname, w, h, rect in images:
            make_image(folder / fname, w, h, rect)
        inst.cli("images", "import", name, str(folder))
    if checkpoint is not None:
        args = ("--type", "vit_b", "--name", "vit_b random", "--activate")
        inst.cli("model", "import", str(checkpoint), *args)
    for name in projects if embed is None else embed:
        inst.cli("embed", name)
    return inst


def start_server(inst: Instance, timeout: float = 60) -> Instance:
    inst.log_path = inst.root / "server.log"
    log = inst.log_path.open("w")
    inst.proc = subprocess.Popen(
        [str(ANNOTATOR), "serve"], env=inst.env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if inst.proc.poll() is not None:
            raise RuntimeError(f"annotator serve exited ({inst.proc.returncode}):\n{inst.server_log()}")
        try:
            with socket.create_connection(("127.0.0.1", inst.port), timeout=0.5):
                return inst
        except OSError:
            time.sleep(0.2)
    stop_server(inst)
    raise RuntimeError(f"annotator serve did not listen on {inst.port}:\n{inst.server_log()}")


def stop_server(inst: Instance) -> None:
    if inst.proc and inst.proc.poll() is None:
        inst.proc.terminate()
        try:
            inst.proc.wait(10)
        except subprocess.TimeoutExpired:
            inst.proc.kill()
            inst.proc.wait(5)


def launch_browser(playwright):  # noqa: ANN001, ANN201
    """Debian's Chromium, headless, with a fresh temporary profile."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


def login(page, base_url: str, username: str = "ann", password: str = PASSWORD) -> None:  # noqa: ANN001
    page.goto(f"{base_url}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    with page.expect_navigation():
        page.click("button[type=submit]")
    if "/login" in page.url:
        raise AssertionError(f"login failed, still on {page.url}")


def wait_ready(page, timeout_ms: float = 60000) -> None:  # noqa: ANN001
    """Wait for decoderReady; fail fast with the page's own error when it reports one."""
    page.wait_for_function(
        "document.body.dataset.decoderReady === 'true' || !!document.body.dataset.decoderError",
        timeout=timeout_ms,
    )
    err = page.evaluate("document.body.dataset.decoderError || ''")
    if err:
        raise AssertionError(f"annotate page failed: {err}")


def body_data(page, name: str) -> str | None:  # noqa: ANN001
    return page.evaluate("(n) => document.body.dataset[n] ?? null", name)


def logged_in_page(browser, inst: Instance, width: int = 1280, height: int = 900):  # noqa: ANN001, ANN201
    """A fresh browser context (own cache and storage) with a page logged in as `ann`."""
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    login(page, inst.base_url)
    return context, page


def switch_image(page, press, timeout_ms: float = 60000) -> None:  # noqa: ANN001
    """Run `press()` (next, skip...), then wait until the annotate page has opened the next
    image (its switchCount hook moves) or has none left."""
    before = body_data(page, "switchCount") or "0"
    press()
    page.wait_for_function(
        "(b) => document.body.dataset.switchCount !== b || document.body.dataset.noImages === 'true'",
        arg=before,
        timeout=timeout_ms,
    )


def wait_prefetched(page, timeout_ms: float = 180000) -> str:  # noqa: ANN001
    """Wait until the image after the open one is prefetched; its id, or "none"."""
    page.wait_for_function(
        "!!document.body.dataset.prefetchedId || !!document.body.dataset.prefetchError", timeout=timeout_ms
    )
    err = body_data(page, "prefetchError")
    if err:
        raise AssertionError(f"prefetch failed: {err}")
    return body_data(page, "prefetchedId")


def random_vit_b() -> Path:
    """A random-weight vit_b checkpoint in the official format, cached between runs (benches:
    decoder timings do not depend on the weights)."""
    path = BENCH_CACHE / "sam_vit_b_random_seed0.pth"
    if not path.exists():
        import torch
        from segment_anything import sam_model_registry

        BENCH_CACHE.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(0)
        tmp = path.with_suffix(".tmp")
        torch.save(sam_model_registry["vit_b"](checkpoint=None).state_dict(), tmp)
        tmp.replace(path)
    return path


def pct(values: list[float], q: float) -> float:
    """The q-quantile (nearest rank) of `values`."""
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def summary(values: list[float]) -> dict:
    """median (= p50), p95, min, max and count, rounded."""
    return {
        "median": round(statistics.median(values), 3),
        "p95": round(pct(values, 0.95), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
        "n": len(values),
    }


_bench_instances: dict[tuple, Instance] = {}


def bench_instance(projects: dict[str, list[tuple[str, int, int, tuple]]]) -> Instance:
    """An instance for benches (random vit_b; `projects` as in setup_instance, all embedded),
    set up once per process and removed at exit: benches run one after another reuse it. Start
    and stop its server around each use."""
    key = tuple((name, tuple(images)) for name, images in sorted(projects.items()))
    if key not in _bench_instances:
        root = Path(tempfile.mkdtemp(prefix="bench-instance-"))
        atexit.register(shutil.rmtree, root, True)
        _bench_instances[key] = setup_instance(root, random_vit_b(), projects)
    return _bench_instances[key]


def embedding_info(page) -> dict:  # noqa: ANN001
    """How the open image's embedding reached the decoder (DecoderClient.loadEmbedding's answer:
    dtype, bytes, loadMs = fetchMs + convertMs + handoffMs)."""
    return page.evaluate(
        "async () => { const a = window.annotatorDebug.annotator;"
        " return await a.decoder.embeddings.get(a.key); }"
    )
