"""Draw one episode as a PNG: the whole image with every box, then each view the agent saw.

Panel 1 is `env.render()` (the original, downscaled, with the ground truth in green, the crops in
orange, numbered, and the last view in blue). Each following panel is one observation, at its own
pixels, with the ground truth mapped into it (green) and the crop the agent chose from it
(orange); titles give the turn, the region of the original shown, the action and its result.
All mapping goes through `grounding_gym.geometry.from_original`, so a box drawn in the wrong
place means the env and the drawing disagree.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from grounding_gym.geometry import Box, clip_box, from_original

__all__ = ["EpisodeFrames", "episode_png", "play_episode"]


@dataclass
class EpisodeFrames:
    """What `play_episode` collected.

    Attributes:
        overview: `env.render()` after the last step, uint8 (h, w, 3).
        views: the observation image of each turn (turn 0 = the first view).
        view_boxes: region of the original each view shows, original px.
        actions: action text of each step (one fewer than views when the episode ended with an
            answer, equal when it ran out of turns).
        infos: the info of each step (without `messages`).
        gt_boxes: ground truth, original px.
        question: the first user turn's text.
        image_size: `(w, h)` of the original, px.
    """

    overview: np.ndarray
    views: list[np.ndarray] = field(default_factory=list)
    view_boxes: list[Box] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    infos: list[dict[str, Any]] = field(default_factory=list)
    gt_boxes: list[Box] = field(default_factory=list)
    question: str = ""
    image_size: tuple[int, int] = (0, 0)


def play_episode(
    env: gym.Env,
    policy: Callable[[dict[str, Any], dict[str, Any]], str | None] | Sequence[str],
    *,
    seed: int | None = None,
    options: dict[str, Any] | None = None,
    extra_info: dict[str, Any] | None = None,
) -> EpisodeFrames:
    """Run one episode and keep every view.

    Args:
        env: an env made with `render_mode="rgb_array"`.
        policy: `policy(observation, info) -> action text` (None ends the episode, as for an
            eval `Agent`), or a list of actions to replay.
        seed, options: passed to `reset` (e.g. `options={"sample_id": ...}`).
        extra_info: keys added to every info handed to `policy` (the harness's `episode`,
            `sample_index`).
    """
    obs, info = env.reset(seed=seed, options=options)
    frames = EpisodeFrames(
        overview=np.zeros((1, 1, 3), np.uint8),
        question=obs["dialogue"],
        gt_boxes=[Box(*b) for b in info["gt_boxes"]],
        image_size=tuple(info["image_size"]),
    )
    frames.views.append(obs["image"])
    frames.view_boxes.append(Box(*info["view_box"]))
    if callable(policy):
        act = policy
    else:
        replay = iter(list(policy))
        act = lambda _obs, _info: next(replay, None)  # noqa: E731
    for _ in range(10_000):
        action = act(obs, {**info, **(extra_info or {})})
        if action is None:
            break
        obs, _, terminated, truncated, info = env.step(action)
        frames.actions.append(action)
        frames.infos.append({k: v for k, v in info.items() if k != "messages"})
        if terminated or truncated:
            break
        frames.views.append(obs["image"])
        frames.view_boxes.append(Box(*info["view_box"]))
    overview = env.render()
    if overview is None:
        raise ValueError("the env was not made with render_mode='rgb_array'")
    frames.overview = np.asarray(overview)
    return frames


def _step_title(info: dict[str, Any], action: str) -> str:
    kind = info.get("action_kind")
    if kind == "crop" and info.get("crop_box") is not None:
        iou, cov = info.get("crop_iou"), info.get("crop_coverage")
        score = f" IoU {iou:.3f} cov {cov:.3f}" if iou is not None else ""
        return f"-> crop{score}"
    if kind == "answer":
        mark = "correct" if info.get("correct") else "wrong"
        return f"-> answer {info.get('answer')!s} ({mark})"
    return f"-> {kind}: {textwrap.shorten(str(info.get('action_error') or action), 40)}"


def _draw_box(
    ax: Any, box_orig: Box, view_box: Box, view_size: tuple[int, int], color: str
) -> None:
    """Outline the part of `box_orig` (original px) inside the view, in view px (imshow puts
    pixel i's centre at i, so continuous edge x sits at x - 0.5)."""
    from matplotlib.patches import Rectangle

    inside = clip_box(box_orig, view_box)
    if inside is None:
        return
    b = from_original(inside, "view", view_box, view_size)
    ax.add_patch(
        Rectangle(
            (b.x1 - 0.5, b.y1 - 0.5), b.width, b.height, fill=False, edgecolor=color, linewidth=1.5
        )
    )


def _circle_tiny_targets(ax: Any, frames: EpisodeFrames) -> None:
    """Ring each ground-truth box drawn smaller than 12 px in the overview, so it can be found."""
    from matplotlib.patches import Circle

    if not frames.image_size[0]:
        return
    scale = frames.overview.shape[1] / frames.image_size[0]
    for gt in frames.gt_boxes:
        if max(gt.width, gt.height) * scale < 12:
            cx, cy = gt.center
            ax.add_patch(
                Circle(
                    (cx * scale - 0.5, cy * scale - 0.5),
                    14,
                    fill=False,
                    edgecolor="lime",
                    linewidth=1.2,
                    linestyle="--",
                )
            )


def episode_png(frames: EpisodeFrames, title: str = "", max_cols: int = 4) -> bytes:
    """The figure of an episode as PNG bytes (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    panels = 1 + len(frames.views)
    cols = min(max_cols, panels)
    rows = -(-panels // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 4.4 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    axes.flat[0].imshow(frames.overview)
    axes.flat[0].set_title(
        "original: gt green (circled when tiny), crops orange, last view blue", fontsize=8
    )
    _circle_tiny_targets(axes.flat[0], frames)
    for t, (view, view_box) in enumerate(zip(frames.views, frames.view_boxes, strict=True)):
        ax = axes.flat[t + 1]
        ax.imshow(view)
        h, w = view.shape[:2]

        for gt in frames.gt_boxes:
            _draw_box(ax, gt, view_box, (w, h), "lime")
        info = frames.infos[t] if t < len(frames.infos) else {}
        if info.get("crop_box") is not None:
            _draw_box(ax, Box(*info["crop_box"]), view_box, (w, h), "orange")
        region = "[" + ", ".join(f"{c:.0f}" for c in view_box.as_tuple()) + "]"
        step = _step_title(info, frames.actions[t]) if t < len(frames.actions) else ""
        ax.set_title(f"turn {t}: view {w}x{h} of {region}\n{step}", fontsize=8)
    question = frames.question.split("\n", 1)[0]
    fig.suptitle(textwrap.shorten(f"{title} {question}".strip(), 150), fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()
