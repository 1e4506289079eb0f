"""Procedural high-resolution grounding data: datasets `synthetic-hr` and `synthetic`.

Each sample is a cluttered image with a few coloured rings; one ring is the target and holds the
content the question asks about. The content is drawn so fine that it survives only when the ring
is seen close to full resolution: in the first view of a 4K image (the whole image resized to
~1 megapixel) a small ring's content averages to flat grey, while a crop around the ring shows it.

Families (`Sample.category`):

| family   | how the target is named                   | what needs zooming                      |
|----------|-------------------------------------------|-----------------------------------------|
| `read`   | its colour ("the red ring"), the only     | reading the content                     |
|          | ring of that colour                       |                                         |
| `search` | a small label next to it ("the ring       | finding it among same-colour rings by   |
|          | labelled K7")                             | their labels, then reading the content  |

Content kinds (`metadata["content_kind"]`), always 4 options A-D with the answer letter uniform:

* `pattern`: one of `PATTERNS` ("horizontal stripes", "vertical stripes", "checkerboard", "dots");
* `digit`: a seven-segment digit 0-9 as large as the ring allows (drawn as polygons, no font),
  its segments filled with a fine checkerboard on a flat ground (texture-defined).

Both are two greys whose every period is symmetric with mean grey exactly the ground's, and the
texture region's outline is hidden too (patterns fade out over two periods, digit segments are
snapped to whole periods; see `render_content`), so once a view's resampling removes the texture
nothing of the content is left: not a brighter blob, not an outline.

Legibility. The period scales with the ring: patterns have `24 + 8 * difficulty` cycles across
the ring's inside, digits `3.5 + difficulty` checker cells across a segment; never finer than
`MIN_PERIOD_PX` = 4 original px (digit cells are even, >= 2 px). PIL's bicubic reduction (the
env's resize) keeps < 1 % of a texture whose period is <= 1.1 view px (measured), so a view that
shrinks the ring's inside below ~`1.1 * N` view px shows flat grey. With the first view at ~1 MP
that is every target of relative area <= 1e-3 on 4K images (period 4 px / 4.1 = 0.98 view px),
while targets of relative area >= 0.05 keep a period of >= 6 view px, legible in the first view.
Measured (tests/grounding_gym/data/test_synthetic.py): swapping the target's content in a 4K image
(relative area
1e-4..1e-3) changes its first view by <= 3 grey levels (patterns; digits <= 2) and its oracle crop
by >= 119 levels. `difficulty` in [0, 1] also lowers the contrast (200 -> 110 grey levels) and,
in `search`, shrinks the labels (0.26 -> 0.16 of the ring's diameter) and adds same-colour rings
(2 -> 8).

Template reader `read_content` (default `min_score=0.5`), measured on 4096 px images with the
first view from `fit_to_budget(w, h, 3136, 1003520)`: targets of relative area 1e-4..1e-3 read in
the first view 0/240 (always None, "illegible"; forced choice 26 %, chance 25 %), in the oracle
crop 240/240 (difficulty 0, 0.5, 1); relative area 0.05..0.3 read in the first view 160/160
(1024-4096 px images); relative area 1e-3..5e-2: first view 60 % read (97 % of those it answers).
Best scores: >= 0.84 where the content is legible, <= 0.20 where the resampling removed it.

Rendering is lazy: `SyntheticHR[i]` lays out the scene (~3 ms, no pixels) and `Sample.image` is
a picklable `SyntheticImage` that draws the RGB image when called: per image (default settings,
square, CPU time, median / max of 10; single-threaded, so about the wall time on an idle 2-core
machine) 2048 px 0.03 / 0.07 s, 4096 px 0.14 / 0.22 s, 8192 px 0.61 / 0.89 s.

Modules: `render` (palette, content textures, `SyntheticImage`), `dataset` (`SyntheticHR`,
`SyntheticRef`, the registrations), `reader` (`read_content(view, box_view, sample)`, the template
reader: it renders every option's content at the ring's size in the view and compares phase-free
features).
"""

from grounding_gym.data.synthetic.dataset import (
    SyntheticHR,
    SyntheticRef,
    make_synthetic,
    target_group,
)
from grounding_gym.data.synthetic.reader import content_scores, read_content
from grounding_gym.data.synthetic.render import (
    CONTENT_KINDS,
    DIGITS,
    FAMILIES,
    PALETTE,
    PATTERNS,
    SyntheticImage,
    content_period,
    render_content,
)

__all__ = [
    "CONTENT_KINDS",
    "DIGITS",
    "FAMILIES",
    "PALETTE",
    "PATTERNS",
    "SyntheticHR",
    "SyntheticImage",
    "SyntheticRef",
    "content_period",
    "content_scores",
    "make_synthetic",
    "read_content",
    "render_content",
    "target_group",
]
