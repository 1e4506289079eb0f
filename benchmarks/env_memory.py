"""Peak resident memory of a pool of envs against its size (the `memory` section's env table).

Each case runs in a fresh subprocess (`python -m benchmarks.env_memory --probe JSON`), which
builds `num_envs` `GroundedVQAEnv`s on one kind of image (`real`: the photos of `--images`,
resized to the case's longest side and saved as JPEG; `synthetic`: `synthetic-hr` at that side)
and runs one GRPO-like round: env `i` works on image `i // GROUP` (groups of 8 envs per
question, so 1, 2 and 8 distinct images for 1, 16 and 64 envs), resets (first view, 448 x 448
px), crops the central half (a pyramid level) and then a small region of it (resampled from
the full decode). The subprocess reports its peak RSS (`VmHWM`), its RSS before the first
reset (the base: interpreter, numpy, Pillow, the envs) and the store's counters.

Modes: `shared` (the default env: one byte-bounded store for the process,
`image_cache_bytes`), and `per-env` (each env gets a private, unbounded store: every env keeps
its own decode and pyramid, as envs did before the shared store).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass

GROUP = 8
"""Envs per question (a GRPO group): env `i` works on image `i // GROUP`."""

VIEW_PIXELS = 448 * 448
"""`max_pixels` of the envs: the first view of the demo and the scale-bias task."""

ACTIONS = ("<crop>[250, 250, 750, 750]</crop>", "<crop>[400, 400, 600, 600]</crop>")
"""norm1000 crops: the central half of the image (shrunk >= 4x: a pyramid level), then a
tenth of it per side (about 1:1: resampled from the full decode)."""


@dataclass
class MemoryCase:
    """One measured pool: what ran, and its memory in bytes."""

    kind: str
    side: int
    num_envs: int
    mode: str
    budget: int
    images: int
    base_rss: int
    peak_rss: int
    store_bytes: int
    made: int
    evictions: int
    one_decode: int = 0

    @property
    def above_base(self) -> int:
        return self.peak_rss - self.base_rss

    @property
    def bound(self) -> int:
        """Base + budget + one image being decoded with its pyramid (`one_decode`): what a
        `shared` pool may hold whatever its number of envs (`image_store.MAX_DECODES` = 1)."""
        return self.base_rss + self.budget + self.one_decode


def _status_bytes(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def prepare_photos(images_dir: str, side: int, out_dir: str, count: int) -> list[str]:
    """`count` JPEGs (quality 90) of the photos in `images_dir`, cycled, each resized so its
    longest side is `side` px (LANCZOS; smaller photos are enlarged)."""
    from PIL import Image, ImageOps

    names = sorted(
        n for n in os.listdir(images_dir) if n.lower().endswith((".jpg", ".jpeg", ".png", ".webp"))
    )
    if not names:
        raise FileNotFoundError(f"no photos in {images_dir!r}; pass --images DIR")
    paths = []
    for i in range(count):
        name = names[i % len(names)]
        with Image.open(os.path.join(images_dir, name)) as raw:
            image = ImageOps.exif_transpose(raw).convert("RGB")
        scale = side / max(image.size)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        path = os.path.join(out_dir, f"{i:02d}-{side}-{os.path.splitext(name)[0]}.jpg")
        image.resize(size, Image.Resampling.LANCZOS).save(path, quality=90)
        paths.append(path)
    return paths


def probe(kind: str, side: int, num_envs: int, mode: str, budget: int, photos: Sequence[str]):
    """Run one case in this process (a fresh one); returns its `MemoryCase`."""
    from grounding_gym.data import Sample, make_dataset
    from grounding_gym.envs.grounded_vqa import GroundedVQAEnv
    from grounding_gym.image_store import ImageStore

    images = -(-num_envs // GROUP)
    if kind == "real":
        samples = [
            Sample(id=f"photo-{i}", image=p, question="What is shown?", answer="x")
            for i, p in enumerate(photos[:images])
        ]
    else:
        samples = list(make_dataset("synthetic-hr", num_samples=images, image_size=side))
    envs = [
        GroundedVQAEnv(
            samples,
            coord_frame="norm1000",
            max_pixels=VIEW_PIXELS,
            image_cache_bytes=budget,
        )
        for _ in range(num_envs)
    ]
    if mode == "per-env":
        for env in envs:
            env.image_store = ImageStore(2**62)
    base = _status_bytes("VmRSS")
    for i, env in enumerate(envs):
        env.reset(seed=0, options={"sample_id": i // GROUP})
        for action in ACTIONS:
            env.step(action)
    stores = {id(env.image_store): env.image_store for env in envs}.values()
    largest = max(w * h for w, h in (env.image_handle.size for env in envs))
    return MemoryCase(
        kind=kind,
        side=side,
        num_envs=num_envs,
        mode=mode,
        budget=budget,
        images=images,
        base_rss=base,
        peak_rss=_status_bytes("VmHWM"),
        store_bytes=sum(s.nbytes for s in stores),
        made=sum(s.stats().misses for s in stores),
        evictions=sum(s.stats().evictions for s in stores),
        # RGB as Pillow stores it, plus levels (< 1/3), plus a synthetic draw's numpy arrays
        one_decode=largest * 4 * 4 // 3 + (_draw_working_set(side) if kind != "real" else 0),
    )


def _draw_working_set(side: int) -> int:
    """Peak bytes numpy allocates while one `side` px synthetic image is drawn (tracemalloc; the
    image's own Pillow buffer is not traced: `one_decode` counts it). Measured after the case's
    peak RSS was read, on a sample no env used."""
    import tracemalloc

    from grounding_gym.data import make_dataset

    sample = next(iter(make_dataset("synthetic-hr", num_samples=1, image_size=side, seed=1)))
    tracemalloc.start()
    try:
        sample.image()  # a SyntheticImage draws when called
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def run_case(
    kind: str, side: int, num_envs: int, mode: str, budget: int, photos: Sequence[str]
) -> MemoryCase:
    """`probe` in a fresh Python process (so its peak RSS is this case's alone)."""
    spec = json.dumps(
        {
            "kind": kind,
            "side": side,
            "num_envs": num_envs,
            "mode": mode,
            "budget": budget,
            "photos": list(photos),
        }
    )
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.env_memory", "--probe", spec],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"memory probe {spec[:200]} failed:\n{done.stderr[-2000:]}")
    return MemoryCase(**json.loads(done.stdout.strip().splitlines()[-1]))


def bench_env_memory(
    images_dir: str | None,
    sides: Sequence[int] = (4096, 8192),
    env_counts: Sequence[int] = (1, 16, 64),
    budget: int | None = None,
    per_env_max_envs: int = 16,
    per_env_max_side: int = 4096,
) -> list[MemoryCase]:
    """Every (kind, side, number of envs) case in `shared` mode, plus `per-env` cases up to
    `per_env_max_envs` envs at sides up to `per_env_max_side` (larger ones need tens of GB)."""
    from grounding_gym.image_store import default_cache_bytes

    budget = default_cache_bytes() if budget is None else budget
    kinds = ["synthetic"]
    if images_dir and os.path.isdir(images_dir):
        kinds.insert(0, "real")
    cases = []
    with tempfile.TemporaryDirectory(prefix="gg-memory-") as tmp:
        for kind in kinds:
            for side in sides:
                photos = (
                    prepare_photos(images_dir, side, tmp, -(-max(env_counts) // GROUP))
                    if kind == "real"
                    else []
                )
                for n in env_counts:
                    print(f"[bench] memory: {kind} {side} px, {n} envs", file=sys.stderr)
                    cases.append(run_case(kind, side, n, "shared", budget, photos))
                    if n <= per_env_max_envs and side <= per_env_max_side:
                        cases.append(run_case(kind, side, n, "per-env", budget, photos))
    return cases


def markdown_table(cases: Sequence[MemoryCase]) -> str:
    """One row per case: peak RSS, its part above the base, and ratios to the 1-env case of the
    same kind, side and mode, beside the budget and the bound (`MemoryCase.bound`)."""
    mib = 2**20
    ones = {(c.kind, c.side, c.mode): c for c in cases if c.num_envs == 1}
    lines = [
        "| images | side (px) | envs | distinct images | mode | base RSS (MiB) | peak RSS (MiB) "
        "| peak / 1 env | above base (MiB) | above base / 1 env | budget (MiB) | bound (MiB) "
        "| store at end (MiB) | values made | evictions |",
        "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in cases:
        one = ones.get((c.kind, c.side, c.mode))
        ratio = f"{c.peak_rss / one.peak_rss:.2f}" if one else "-"
        above = f"{c.above_base / one.above_base:.2f}" if one and one.above_base > 0 else "-"
        budget = f"{c.budget / mib:.0f}" if c.mode == "shared" else "none"
        bound = f"{c.bound / mib:.0f}" if c.mode == "shared" and c.one_decode else "-"
        lines.append(
            f"| {c.kind} | {c.side} | {c.num_envs} | {c.images} | {c.mode} | "
            f"{c.base_rss / mib:.0f} | {c.peak_rss / mib:.0f} | {ratio} | "
            f"{c.above_base / mib:.0f} | {above} | {budget} | {bound} | "
            f"{c.store_bytes / mib:.0f} | {c.made} | {c.evictions} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.env_memory", description=__doc__)
    parser.add_argument("--probe", required=True, help="JSON spec of one case (internal)")
    spec = json.loads(parser.parse_args(argv).probe)
    case = probe(**spec)
    print(json.dumps(asdict(case)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
