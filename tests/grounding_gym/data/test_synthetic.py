"""`synthetic-hr` / `synthetic`: determinism, laziness, layout, answer balance, and legibility.

The legibility claims are the point of the generator: a small target's content is unreadable in
the first view of a 4K image (whole image in ~1 MP) and readable once cropped; a large target is
readable in the first view. They are checked with the template reader `read_content`.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import pickle

import numpy as np
import pytest

import grounding_gym.data.synthetic.dataset as synthetic_dataset
import grounding_gym.data.synthetic.render as synthetic_render
from grounding_gym.data.registry import make_dataset
from grounding_gym.data.synthetic import (
    CONTENT_KINDS,
    DIGITS,
    FAMILIES,
    PALETTE,
    PATTERNS,
    SyntheticHR,
    SyntheticImage,
    content_period,
    read_content,
    render_content,
)
from grounding_gym.geometry import Box, from_original, grow_to_min, intersection_area
from grounding_gym.views import fit_to_budget, render_view

MIN_PIXELS, MAX_PIXELS = 3136, 1003520
SMALL = {"image_size": (256, 512)}


def first_view(image, sample):
    """(view, target box in view px) of the whole image resized into the pixel budget."""
    w, h = image.size
    whole = Box(0, 0, w, h)
    size = fit_to_budget(w, h, min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS)
    return render_view(image, whole, size), from_original(sample.gt_boxes[0], "view", whole, size)


def oracle_view(image, sample):
    """(view, target box in view px) of the gt box grown to >= 28 px, resized into the budget."""
    crop = grow_to_min(sample.gt_boxes[0], 28, Box(0, 0, *image.size))
    size = fit_to_budget(crop.width, crop.height, min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS)
    return render_view(image, crop, size), from_original(sample.gt_boxes[0], "view", crop, size)


def sample_fields(s):
    return (
        s.id,
        s.question,
        s.answer,
        s.options,
        s.gt_boxes,
        s.category,
        s.image_size,
        dict(s.metadata),
    )


# ---------------------------------------------------------------------------------------------
# Determinism, laziness, pickling
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_same_seed_gives_identical_samples_and_pixels():
    a, b = SyntheticHR(4, seed=3, **SMALL), SyntheticHR(4, seed=3, **SMALL)
    for i in range(4):
        assert sample_fields(a[i]) == sample_fields(b[i])
        assert a[i].image().tobytes() == b[i].image().tobytes()
        assert a[i].image().tobytes() == a[i].image().tobytes()  # re-rendering is stable too


def test_different_seeds_give_different_samples():
    a, b = SyntheticHR(4, seed=0, **SMALL), SyntheticHR(4, seed=1, **SMALL)
    for i in range(4):
        assert a[i].id == f"synthetic-hr-0-{i}" and b[i].id == f"synthetic-hr-1-{i}"
        assert a[i].gt_boxes != b[i].gt_boxes or a[i].image_size != b[i].image_size
        assert a[i].image().tobytes() != b[i].image().tobytes()


def test_sample_depends_on_seed_and_index_only():
    small, big = SyntheticHR(5, seed=2, **SMALL), SyntheticHR(10_000, seed=2, **SMALL)
    assert sample_fields(small[4]) == sample_fields(big[4]) == sample_fields(big[-9_996])
    assert sample_fields(small[-1]) == sample_fields(small[4])


def test_building_and_indexing_render_nothing(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("pixels were rendered")

    monkeypatch.setattr(synthetic_render, "_background", refuse)
    monkeypatch.setattr(synthetic_render, "render_content", refuse)
    data = SyntheticHR(10_000)  # defaults: 2K-8K images
    assert len(data) == 10_000
    assert len(pickle.dumps(data)) < 1_000  # the dataset holds parameters, not samples
    for i in (0, 1, 9_999, -1):
        sample = data[i]
        assert isinstance(sample.image, SyntheticImage)
        assert 2048 <= min(sample.image_size) <= max(sample.image_size) <= 8192
        assert len(pickle.dumps(sample)) < 8_000  # a sample is a small scene description
    with pytest.raises(AssertionError, match="rendered"):
        data[0].image()


def test_image_callable_pickles_and_renders_the_same_pixels():
    sample = SyntheticHR(2, seed=5, **SMALL)[1]
    clone = pickle.loads(pickle.dumps(sample))
    assert isinstance(clone.image, SyntheticImage) and clone.image == sample.image
    assert clone.image().tobytes() == sample.image().tobytes()
    assert "synthetic-hr-5-1" in repr(sample.image)  # short repr for error messages


def test_rendered_image_matches_image_size():
    for sample in SyntheticHR(3, seed=4, image_size=(300, 700)):
        image = sample.image()
        assert image.mode == "RGB" and image.size == sample.image_size


# ---------------------------------------------------------------------------------------------
# Arguments, indexing, registry
# ---------------------------------------------------------------------------------------------


def test_indexing_errors():
    data = SyntheticHR(3, **SMALL)
    with pytest.raises(IndexError, match="out of range"):
        data[3]
    with pytest.raises(IndexError):
        data[-4]
    with pytest.raises(TypeError, match="int"):
        data[0:2]
    assert [s.id for s in data] == ["synthetic-hr-0-0", "synthetic-hr-0-1", "synthetic-hr-0-2"]


def test_index_of_parses_ids_without_building_samples(monkeypatch):
    data = SyntheticHR(100_000, seed=3, **SMALL)
    monkeypatch.setattr(
        synthetic_dataset, "_make_sample", lambda *a: pytest.fail("index_of built a sample")
    )
    assert data.index_of("synthetic-hr-3-99999") == 99_999
    for unknown in (
        "synthetic-hr-3-100000",
        "synthetic-hr-0-5",
        "synthetic-hr-3-05",
        "synthetic-hr-3-",
        "x",
    ):
        assert data.index_of(unknown) is None
    monkeypatch.undo()
    assert data[data.index_of("synthetic-hr-3-42")].id == "synthetic-hr-3-42"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"families": ("reed",)}, "Did you mean 'read'"),
        ({"content_kinds": ("digits",)}, "Did you mean 'digit'"),
        ({"difficulty": 1.5}, r"difficulty must be in \[0, 1\]"),
        ({"target_rel_area": (0.3, 0.1)}, "target_rel_area"),
        ({"target_rel_area": (1e-4, 0.9)}, "<= 0.4"),
        ({"image_size": (32, 100)}, "image_size"),
        ({"seed": -1}, "seed"),
        ({"num_distractors": -2}, "num_distractors"),
    ],
)
def test_bad_arguments_raise_with_the_allowed_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SyntheticHR(**kwargs)


def test_registered_datasets():
    hr = make_dataset("synthetic-hr", num_samples=3, seed=7)
    assert isinstance(hr, SyntheticHR) and hr[0].id == "synthetic-hr-7-0"
    low = make_dataset("synthetic", num_samples=50, seed=7)
    assert len(low) == 50 and low[0].id == "synthetic-7-0"
    for sample in low:
        assert 448 <= min(sample.image_size) and max(sample.image_size) <= 1344
        assert 5e-3 * 0.9 <= sample.metadata["target_rel_area"] <= 0.3 * 1.1


# ---------------------------------------------------------------------------------------------
# Layout: relative area, boxes, objects, colours
# ---------------------------------------------------------------------------------------------


def test_relative_area_follows_the_requested_log_uniform_range():
    lo, hi = 1e-4, 0.3
    data = SyntheticHR(400, seed=1, target_rel_area=(lo, hi))
    areas = np.array([data[i].metadata["target_rel_area"] for i in range(len(data))])
    assert areas.min() >= lo * 0.95 and areas.max() <= hi * 1.05
    assert areas.min() < lo * 2 and areas.max() > hi / 2  # both ends are reached
    log_pos = (np.log(areas) - math.log(lo)) / (math.log(hi) - math.log(lo))
    counts = np.histogram(log_pos, bins=4, range=(0, 1))[0]
    assert counts.min() > 60, f"not log-uniform: {counts}"
    for i in range(20):  # the metadata value is the gt box's
        s = data[i]
        assert s.metadata["target_rel_area"] == pytest.approx(
            s.gt_boxes[0].area / (s.image_size[0] * s.image_size[1])
        )


@pytest.mark.parametrize("rel_area", [1e-4, 0.3])
def test_both_extremes_are_reachable(rel_area):
    data = SyntheticHR(60, seed=2, target_rel_area=rel_area)
    for s in data:
        w, h = s.image_size
        assert s.metadata["target_rel_area"] == pytest.approx(rel_area, rel=0.08)  # integer px
        box = s.gt_boxes[0]
        assert 0 <= box.x1 and box.x2 <= w and 0 <= box.y1 and box.y2 <= h
        assert 2048 <= min(w, h) and max(w, h) <= 8192


def test_objects_do_not_overlap_the_target_and_stay_inside():
    for difficulty in (0.0, 1.0):
        for s in SyntheticHR(150, seed=3, difficulty=difficulty, image_size=(512, 2048)):
            target, bounds = s.gt_boxes[0], Box(0, 0, *s.image_size)
            others = list(s.metadata["distractor_boxes"])
            if s.metadata["label_box"] is not None:
                assert intersection_area(s.metadata["label_box"], target) == 0
            for ring in s.image.rings[1:]:
                if ring.label_box is not None:
                    others.append(Box(*ring.label_box))
            for box in others + [target]:
                assert intersection_area(box, bounds) == box.area
            for box in others:
                assert intersection_area(box, target) == 0, (s.id, box, target)


def test_gt_box_is_tight_on_the_ring():
    for s in SyntheticHR(12, seed=4, image_size=(400, 900), target_rel_area=(2e-3, 0.2)):
        pixels = np.asarray(s.image())
        color = PALETTE[s.metadata["attributes"]["color"]]
        x1, y1, x2, y2 = (int(v) for v in s.gt_boxes[0].as_tuple())
        cx, cy = (x1 + x2) // 2, (y1 + y2) // 2
        inside = [(cx, y1), (cx, y2 - 1), (x1, cy), (x2 - 1, cy)]
        outside = [(cx, y1 - 1), (cx, y2), (x1 - 1, cy), (x2, cy)]
        for x, y in inside:
            assert tuple(pixels[y, x]) == color, (s.id, x, y)
        for x, y in outside:
            if 0 <= x < pixels.shape[1] and 0 <= y < pixels.shape[0]:
                assert tuple(pixels[y, x]) != color, (s.id, x, y)


def test_read_target_is_the_only_thing_of_its_colour():
    data = SyntheticHR(40, seed=5, families=("read",), image_size=(400, 800))
    for s in list(data)[:10]:
        color = PALETTE[s.metadata["attributes"]["color"]]
        pixels = np.asarray(s.image())
        ys, xs = np.nonzero(np.all(pixels == color, axis=-1))
        assert len(xs) > 0
        box = s.gt_boxes[0]
        assert box.x1 <= xs.min() and xs.max() < box.x2 and box.y1 <= ys.min() and ys.max() < box.y2
    for s in data:
        rings = s.image.rings
        assert rings[0].label is None and s.metadata["attributes"]["label"] is None
        assert all(r.color != rings[0].color for r in rings[1:])


def test_search_distractors_share_the_colour_but_not_the_content_or_label():
    data = SyntheticHR(60, seed=6, families=("search",), image_size=(1024, 2048))
    for s in data:
        target, *others = s.image.rings
        same = [r for r in others if r.color == target.color]
        # 2 + round(6 * 0.5) requested; only huge targets leave too little room for them all
        assert (
            len(same)
            == s.metadata["num_distractors"]
            >= (5 if target.diameter**2 <= 0.05 * (s.image_size[0] * s.image_size[1]) else 1)
        )
        assert all(r.content != target.content for r in same)
        assert all(r.content in s.options for r in same)  # a wrong ring gives a wrong option
        labels = [r.label for r in s.image.rings]
        assert None not in labels and len(set(labels)) == len(labels)
        assert s.metadata["attributes"]["label"] == target.label
        assert f"labelled {target.label}" in s.question
        assert s.metadata["referring_expression"] == f"the ring labelled {target.label}"
        label = s.metadata["label_box"]  # next to its ring
        gap = max(
            label.x1 - target.box.x2,
            target.box.x1 - label.x2,
            label.y1 - target.box.y2,
            target.box.y1 - label.y2,
        )
        assert 0 <= gap <= 0.1 * target.diameter + 2


def test_difficulty_adds_search_distractors_and_refines_content():
    def mean_distractors(difficulty):
        data = SyntheticHR(30, seed=7, families=("search",), difficulty=difficulty, image_size=2048)
        return np.mean([s.metadata["num_distractors"] for s in data])

    assert mean_distractors(1.0) > mean_distractors(0.0) + 2
    for kind in CONTENT_KINDS:
        assert content_period(kind, 2000, 1.0) < content_period(kind, 2000, 0.0)
        assert content_period(kind, 2000, 0.5) < content_period(kind, 4000, 0.5)  # scales with ring
    counts = SyntheticHR(5, families=("search",), num_distractors=0, image_size=1024)
    assert all(s.metadata["num_distractors"] == 0 for s in counts)


# ---------------------------------------------------------------------------------------------
# Questions and answers
# ---------------------------------------------------------------------------------------------


def test_answer_letters_are_uniform_and_options_well_formed():
    data = SyntheticHR(600, seed=8, **SMALL)
    letters = collections.Counter()
    combos = collections.Counter()
    for s in data:
        letters[s.answer] += 1
        combos[(s.category, s.metadata["content_kind"])] += 1
        attrs = s.metadata["attributes"]
        assert len(s.options) == 4 and len(set(s.options)) == 4
        assert s.options[s.option_letters.index(s.answer)] == attrs["content"]
        pool = PATTERNS if s.metadata["content_kind"] == "pattern" else DIGITS
        assert set(s.options) <= set(pool)
        assert s.category == s.metadata["family"] and attrs["color"] in PALETTE
        assert s.gt_boxes == (s.image.rings[0].box,)
        if s.category == "read":
            assert (
                attrs["color"] in s.question
                and attrs["color"] in s.metadata["referring_expression"]
            )
    assert set(letters) == set("ABCD")
    assert all(110 <= n <= 190 for n in letters.values()), letters  # 150 expected, sd 11
    assert set(combos) == {(f, k) for f in FAMILIES for k in CONTENT_KINDS}
    assert all(n > 90 for n in combos.values()), combos


def test_family_and_kind_selection():
    data = SyntheticHR(20, families=("search",), content_kinds=("digit",), **SMALL)
    assert {(s.category, s.metadata["content_kind"]) for s in data} == {("search", "digit")}
    assert all(s.question.startswith("Which digit is inside the ring labelled") for s in data)


# ---------------------------------------------------------------------------------------------
# Content rendering and legibility
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", CONTENT_KINDS)
def test_every_content_class_has_the_same_mean(kind):
    canvas, period = 120, content_period(kind, 150, 0.5)
    values = PATTERNS if kind == "pattern" else DIGITS
    templates = [render_content(kind, v, canvas, canvas, period) for v in values]
    for t in templates:
        assert t.shape == (canvas, canvas) and t.dtype == np.float32
        assert t.mean() == pytest.approx(0.5, abs=2e-3)
    spread = [np.abs(a - b).mean() for a in templates for b in templates if a is not b]
    assert min(spread) > 0.01  # ... while the classes differ pixel by pixel


@pytest.mark.slow
@pytest.mark.parametrize("kind", CONTENT_KINDS)
def test_small_target_content_leaves_no_trace_in_the_first_view(kind):
    """Model-free: swapping the target's content changes the first view by ~nothing."""
    sample = SyntheticHR(1, seed=9, image_size=4096, target_rel_area=5e-4, content_kinds=(kind,))[0]
    scene = sample.image
    firsts, crops = [], []
    for option in sample.options:
        ring = dataclasses.replace(scene.rings[0], content=option)
        image = dataclasses.replace(scene, rings=(ring,) + scene.rings[1:])()
        view, box = first_view(image, sample)
        x1, y1, x2, y2 = int(box.x1), int(box.y1), math.ceil(box.x2), math.ceil(box.y2)
        firsts.append(view[y1:y2, x1:x2].astype(int))
        crops.append(oracle_view(image, sample)[0].astype(int))
    first_diff = max(np.abs(a - b).max() for a in firsts for b in firsts)
    crop_diff = min(np.abs(a - b).max() for a in crops for b in crops if a is not b)
    assert first_diff <= 3, f"content visible in the first view: {first_diff} grey levels"
    assert crop_diff > 100, f"content not visible in the crop: {crop_diff} grey levels"


def reader_accuracy(data, n, view_fn, **kwargs):
    hits = []
    for i in range(n):
        sample = data[i]
        view, box = view_fn(sample.image(), sample)
        hits.append(read_content(view, box, sample, **kwargs) == sample.answer)
    return float(np.mean(hits))


@pytest.mark.slow
def test_reader_small_targets_need_the_crop():
    """rel area <= 1e-3 on 4096 px images: chance in the first view, near perfect when cropped."""
    data = SyntheticHR(40, seed=10, image_size=4096, target_rel_area=(1e-4, 1e-3))
    first = forced = crop = 0
    for sample in data:
        image = sample.image()
        view, box = first_view(image, sample)
        first += read_content(view, box, sample) == sample.answer
        forced += read_content(view, box, sample, min_score=-math.inf) == sample.answer
        view, box = oracle_view(image, sample)
        crop += read_content(view, box, sample) == sample.answer
    n = len(data)
    assert forced / n <= 0.45, f"first view (forced choice): {forced}/{n}"
    assert first / n <= 0.45, f"first view: {first}/{n}"
    assert crop / n >= 0.90, f"oracle crop: {crop}/{n}"


@pytest.mark.slow
def test_reader_large_targets_are_legible_in_the_first_view():
    data = SyntheticHR(
        40, seed=11, image_size=(768, 1536), target_rel_area=(0.05, 0.3), num_distractors=1
    )
    assert reader_accuracy(data, len(data), first_view) >= 0.85


def test_reader_works_on_loose_crops_and_partly_visible_boxes():
    data = SyntheticHR(12, seed=12, image_size=(800, 1600), target_rel_area=(0.01, 0.05))

    def loose(image, sample):  # the ring fills ~1/3 of the crop, off centre
        box = sample.gt_boxes[0]
        crop = Box(
            box.x1 - box.width * 1.5,
            box.y1 - box.height * 0.5,
            box.x2 + box.width * 0.5,
            box.y2 + box.height * 1.5,
        )
        crop = Box(
            max(crop.x1, 0),
            max(crop.y1, 0),
            min(crop.x2, image.size[0]),
            min(crop.y2, image.size[1]),
        )
        size = fit_to_budget(crop.width, crop.height, min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS)
        return render_view(image, crop, size), from_original(box, "view", crop, size)

    assert reader_accuracy(data, len(data), loose) >= 0.9
    sample = data[0]
    view, box = oracle_view(sample.image(), sample)
    shifted = Box(box.x1 - 5, box.y1, box.x2 - 5, box.y2)  # box sticks out of the view: no crash
    assert read_content(view[:, 5:], shifted, sample, min_score=-math.inf) in sample.option_letters


def test_reader_rejects_foreign_samples(toy_dataset):
    sample = toy_dataset[0]
    with pytest.raises(ValueError, match="not a synthetic-hr sample"):
        read_content(np.zeros((64, 64, 3), np.uint8), sample.gt_boxes[0], sample)
