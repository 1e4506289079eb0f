"""`DiscreteCropAnswer`: a `Discrete` action space mapped to crop and answer texts.

Action `k` of `Discrete(n_crops + n_answers)`:

| k | text sent to the env |
|---|----------------------|
| `0 .. n_crops-1` | crop tile `k` of the current view: for each `g` in `grids` (default (2, 3)), the `g x g` tiles of the view, row-major, coarser grids first |
| `n_crops + j` | `<answer>{letters[j]}</answer>` |

A tile is a fraction of the *current* view, mapped to original px with `to_original` and written
in the env's `coord_frame` with `crop_action_text` (outward rounding, clamped to the view), so
the wrapper works in every frame and a tile of a tile composes.
"""  # noqa: E501 (table rows)

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym

from grounding_gym.actions import crop_action_text, format_answer
from grounding_gym.geometry import Box, to_original

__all__ = ["DiscreteCropAnswer", "discrete_action_text", "grid_tiles"]


def grid_tiles(grids: Sequence[int]) -> list[Box]:
    """Tiles as `norm1` boxes (fractions of the view), row-major per grid, coarser first.

    >>> [b.as_tuple() for b in grid_tiles([2])][:2]
    [(0.0, 0.0, 0.5, 0.5), (0.5, 0.0, 1.0, 0.5)]
    """
    tiles = []
    for g in grids:
        if int(g) < 1:
            raise ValueError(f"grid sizes must be >= 1, got {g}")
        for row in range(g):
            for col in range(g):
                tiles.append(Box(col / g, row / g, (col + 1) / g, (row + 1) / g))
    return tiles


def discrete_action_text(
    action: int,
    tiles: Sequence[Box],
    letters: str,
    view_box: Box,
    view_size: tuple[int, int],
    frame: str,
    reference: tuple[Box, tuple[int, int]] | None = None,
) -> str:
    """The text of discrete `action` (crop tile `action`, or answer `letters[action - len(tiles)]`)
    for a view; pure, so an agent can use it from `info` alone.

    Args:
        action: in `[0, len(tiles) + len(letters))`.
        tiles: `grid_tiles(grids)`, `norm1` boxes of the view.
        letters: answer letters.
        view_box: region of the original shown, original px.
        view_size: `(w, h)` of the view.
        frame: the env's `coord_frame`.
        reference: what the action's coordinates refer to (`action_frame(info)`, the env's
            `action_reference()`); default the view.
    """
    action = int(action)
    if not 0 <= action < len(tiles) + len(letters):
        raise ValueError(f"action {action} is outside Discrete({len(tiles) + len(letters)})")
    if action >= len(tiles):
        return format_answer(letters[action - len(tiles)])
    tile_orig = to_original(tiles[action], "norm1", view_box, view_size)
    return crop_action_text(tile_orig, *(reference or (view_box, view_size)), frame)


class DiscreteCropAnswer(gym.ActionWrapper):
    """Map `Discrete` actions to crop / answer action texts (table in the module docstring).

    ## Arguments
    `grids=(2, 3)`: tile grids of the crop actions; `letters="ABCD"`: answer actions.
    """

    def __init__(self, env: gym.Env, grids: Sequence[int] = (2, 3), letters: str = "ABCD"):
        super().__init__(env)
        if not letters:
            raise ValueError("letters must name at least one answer")
        self.grids = tuple(int(g) for g in grids)
        self.tiles = grid_tiles(self.grids)
        self.letters = str(letters)
        self.n_crops = len(self.tiles)
        self.action_space = gym.spaces.Discrete(self.n_crops + len(self.letters))

    def action_meanings(self) -> list[str]:
        """Human names of the actions, index-aligned."""
        names = []
        for g in self.grids:
            names += [f"crop {g}x{g} tile r{r}c{c}" for r in range(g) for c in range(g)]
        return names + [f"answer {letter}" for letter in self.letters]

    def text_for(
        self,
        action: int,
        view_box: Box,
        view_size: tuple[int, int],
        frame: str,
        reference: tuple[Box, tuple[int, int]] | None = None,
    ) -> str:
        """`discrete_action_text` with this wrapper's tiles and letters."""
        return discrete_action_text(
            action, self.tiles, self.letters, view_box, view_size, frame, reference
        )

    def action(self, action: Any) -> str:
        base: Any = self.env.unwrapped  # a GroundedVQAEnv: view and frame of the next action
        return self.text_for(
            int(action), base.view_box, base.view_size, base.coord_frame, base.action_reference()
        )
