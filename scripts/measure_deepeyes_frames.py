"""The DeepEyes coordinate mismatch, measured on real photos through `DeepEyesEnv`.

A model that saw the whole photo resized into its pixel budget (the first view) writes
`bbox_2d` in that view's pixels; DeepEyes crops the original with the same numbers. For each
photo, pixel budget and box, this script sends ONE tool call to `GroundedVQA-HR-DeepEyes-v0`
twice: with `coord_frame="view"` (the env maps it to the region the model meant) and with
`coord_frame="original"` (the crop DeepEyes cuts). It reports the IoU of the two crops, the
distance between their centres (original px) and the share of the meant region inside the
crop DeepEyes returns.

    python scripts/measure_deepeyes_frames.py --images ../shared/data/real-highres --json out.json

Boxes are fractions of the view, rounded to whole view px as a model writes them (`BOXES`).
Budgets are Qwen2.5-VL's `smart_resize` with `max_pixels` (`BUDGETS`; the env's `fit_to_budget`).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from grounding_gym.atomic import atomic_write_text  # noqa: E402
from grounding_gym.data import Sample  # noqa: E402
from grounding_gym.envs.deepeyes import DeepEyesEnv  # noqa: E402
from grounding_gym.envs.grounded_vqa import DEFAULT_MAX_PIXELS  # noqa: E402
from grounding_gym.geometry import Box, coverage, iou  # noqa: E402

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
BUDGETS: dict[str, int] = {
    "1280 tokens (1,003,520 px, env default)": DEFAULT_MAX_PIXELS,
    "512 tokens (401,408 px)": 512 * 28 * 28,
}
"""Name -> `max_pixels` of the first view (patch 28, as Qwen2.5-VL)."""
BOXES: dict[str, tuple[float, float, float, float]] = {
    "top-left, 25% of each side": (0.05, 0.05, 0.30, 0.30),
    "centre, 20% of each side": (0.40, 0.40, 0.60, 0.60),
    "small, lower right (8% x 10%)": (0.70, 0.65, 0.78, 0.75),
    "left half": (0.0, 0.0, 0.5, 1.0),
}
"""Name -> the meant region as fractions (x1, y1, x2, y2) of the first view."""


def tool_call(bbox: list[int]) -> str:
    """The DeepEyes action for `bbox` (any frame: the env's `coord_frame` decides)."""
    arguments = {"bbox_2d": bbox, "label": "measured region"}
    call = json.dumps({"name": "image_zoom_in_tool", "arguments": arguments})
    return f"<tool_call>{call}</tool_call>"


def crop_of(
    env: DeepEyesEnv, photo: str, fractions: tuple[float, ...]
) -> tuple[Box, list[int], dict]:
    """Reset on `photo`, write the box at `fractions` of the first view in whole view px, step.

    Returns:
        `(crop_box, bbox_2d, reset_info)`: the env's crop (original px), the numbers sent, and
        reset's info (`view_size` of the first view, `image_size` of the original).
    """
    _, first = env.reset(options={"sample_id": photo})
    view_w, view_h = first["view_size"]
    bbox = [
        round(f * side) for f, side in zip(fractions, (view_w, view_h, view_w, view_h), strict=True)
    ]
    info = env.step(tool_call(bbox))[4]
    if info["crop_box"] is None:
        raise RuntimeError(f"{photo}: the env refused {bbox}: {info['action_error']}")
    return Box(*info["crop_box"]), bbox, first


def measure(photos: list[Path]) -> list[dict[str, Any]]:
    """One row per (photo, budget, box): both crops (original px) and how far apart they are."""
    samples = [Sample(id=p.name, image=str(p), question="(measurement)", answer="") for p in photos]
    rows = []
    for budget_name, max_pixels in BUDGETS.items():
        envs = {
            frame: DeepEyesEnv(samples, coord_frame=frame, max_pixels=max_pixels)
            for frame in ("view", "original")
        }
        for photo in photos:
            for box_name, fractions in BOXES.items():
                meant, bbox, first = crop_of(envs["view"], photo.name, fractions)
                deepeyes, _, _ = crop_of(envs["original"], photo.name, fractions)
                rows.append(
                    {
                        "photo": photo.name,
                        "image_size": first["image_size"],
                        "budget": budget_name,
                        "view_size": first["view_size"],
                        "box": box_name,
                        "bbox_2d": bbox,
                        "crop_view_frame": meant.as_list(),
                        "crop_original_frame": deepeyes.as_list(),
                        "iou": iou(meant, deepeyes),
                        "centre_offset_px": math.dist(meant.center, deepeyes.center),
                        "meant_inside_deepeyes": coverage(meant, deepeyes),
                    }
                )
        for env in envs.values():
            env.close()
    return rows


def summary_table(rows: list[dict[str, Any]]) -> str:
    """Markdown: per budget and box, the median [min, max] over photos of each measure."""

    def spread(values: list[float], fmt: str) -> str:
        return (
            f"{format(statistics.median(values), fmt)} [{format(min(values), fmt)}, "
            f"{format(max(values), fmt)}]"
        )

    lines = [
        "| first view budget | box (of the view) | IoU | centre offset (original px) | meant "
        "region inside the crop |",
        "|---|---|---|---|---|",
    ]
    for budget in BUDGETS:
        for box in BOXES:
            group = [r for r in rows if r["budget"] == budget and r["box"] == box]
            lines.append(
                f"| {budget} | {box} | {spread([r['iou'] for r in group], '.2f')} | "
                f"{spread([r['centre_offset_px'] for r in group], '.0f')} | "
                f"{spread([r['meant_inside_deepeyes'] for r in group], '.2f')} |"
            )
    return "\n".join(lines)


def photo_table(rows: list[dict[str, Any]], budget: str) -> str:
    """Markdown: one row per photo under `budget`: sizes, scale, IoU per box."""
    header = "| photo | original | first view | original px per view px | " + " | ".join(
        f"IoU, {box}" for box in BOXES
    )
    lines = [header + " |", "|---" * (4 + len(BOXES)) + "|"]
    for photo in dict.fromkeys(r["photo"] for r in rows):
        group = {r["box"]: r for r in rows if r["photo"] == photo and r["budget"] == budget}
        first = next(iter(group.values()))
        (image_w, image_h), (view_w, view_h) = first["image_size"], first["view_size"]
        ious = " | ".join(f"{group[box]['iou']:.2f}" for box in BOXES)
        lines.append(
            f"| {photo} | {image_w}x{image_h} | {view_w}x{view_h} | {image_w / view_w:.2f} | "
            f"{ious} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", required=True, help="folder of photos (jpg, png, webp)")
    parser.add_argument("--json", help="write every row here")
    args = parser.parse_args(argv)
    photos = sorted(p for p in Path(args.images).iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)
    if not photos:
        parser.error(f"no photos ({', '.join(PHOTO_SUFFIXES)}) in {args.images}")
    rows = measure(photos)
    sizes = sorted({tuple(r["image_size"]) for r in rows}, key=lambda size: size[0] * size[1])
    print(
        f"{len(photos)} photos, {sizes[0][0]}x{sizes[0][1]} to {sizes[-1][0]}x{sizes[-1][1]} px\n"
    )
    print(summary_table(rows))
    budget = next(iter(BUDGETS))
    print(f"\nPer photo, first view budget {budget}:\n")
    print(photo_table(rows, budget))
    if args.json:
        atomic_write_text(args.json, json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
