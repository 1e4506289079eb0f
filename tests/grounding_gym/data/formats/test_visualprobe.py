"""VisualProbe (Mini-o3): rows read from the published layout, errors, env run, published numbers.

No published row could be read here (the Hugging Face files are not reachable), so the fixture
uses each documented variant: `images` list, question under problem / question / prompt, answer
under solution / answer / ground_truth, `doc_id`, image paths relative to the level folder or to
the root holding the level folders.
"""

from __future__ import annotations

import json

import gymnasium as gym
import pytest
from PIL import Image

import grounding_gym  # noqa: F401  (registers the ids)
from grounding_gym.actions import format_answer
from grounding_gym.data.formats.records import DatasetFormatError
from grounding_gym.data.loaders import load_visualprobe
from grounding_gym.data.registry import make_dataset
from grounding_gym.eval.compare_cli import compare_main

ROWS = {
    "Easy": [
        {
            "images": ["data/visual_probe_easy_0.jpg"],
            "problem": "<image>\nWhat is written on the shop sign?",
            "solution": "YE OLDE.",
            "doc_id": 0,
        },
        {
            "images": ["VisualProbe_Easy/data/visual_probe_easy_1.jpg"],
            "question": "How many birds sit on the wire?",
            "answer": "eight",
            "doc_id": 1,
        },
    ],
    "Hard": [
        {
            "images": ["data/visual_probe_hard_0.jpg"],
            "prompt": "What is the code on the container?",
            "ground_truth": "6C71",
        }
    ],
}


def _write(root, rows=ROWS):
    for level, level_rows in rows.items():
        folder = root / f"VisualProbe_{level}"
        (folder / "data").mkdir(parents=True)
        for k in range(len(level_rows)):
            Image.new("RGB", (640, 480), (k * 40, 90, 200)).save(
                folder / "data" / f"visual_probe_{level.lower()}_{k}.jpg"
            )
        (folder / "val.json").write_text(json.dumps(level_rows), encoding="utf-8")
    return root


def test_rows_load_from_the_published_layout(tmp_path):
    root = _write(tmp_path)
    samples = load_visualprobe(root, levels=("easy", "hard"))
    assert [s.id for s in samples] == ["easy/0", "easy/1", "hard/0"]
    first = samples[0]
    assert first.question == "What is written on the shop sign?"  # <image> placeholder dropped
    assert first.answer == "YE OLDE." and first.options is None and first.gt_boxes == ()
    assert first.category == "easy" and first.metadata["split"] == "easy"
    assert first.image_size == (640, 480)
    assert samples[1].answer == "eight" and samples[2].answer == "6C71"
    assert samples[2].metadata["doc_id"] == 0  # no doc_id: the row's position
    one_level = load_visualprobe(root / "VisualProbe_Hard")
    assert [s.id for s in one_level] == ["hard/0"]
    assert [s.id for s in make_dataset("visualprobe", data_dir=root, levels="easy", limit=1)] == [
        "easy/0"
    ]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"images": ["data/visual_probe_easy_0.jpg"], "problem": "q"}, "no answer"),
        ({"images": ["data/visual_probe_easy_0.jpg"], "solution": "x"}, "no question"),
        ({"images": ["../escape.jpg"], "problem": "q", "solution": "x"}, "stay inside"),
        ({"images": ["a.jpg", "b.jpg"], "problem": "q", "solution": "x"}, "one image"),
        ({"images": ["data/missing.jpg"], "problem": "q", "solution": "x"}, "not found"),
    ],
)
def test_bad_rows_are_refused_with_file_row_and_fix(tmp_path, row, message):
    root = _write(tmp_path, {"Easy": [row]})
    with pytest.raises(DatasetFormatError, match=message) as info:
        load_visualprobe(root, levels=("easy",))
    assert "val.json, line 1, row 0" in str(info.value)


def test_missing_level_and_unknown_level(tmp_path):
    root = _write(tmp_path, {"Easy": ROWS["Easy"]})
    with pytest.raises(DatasetFormatError, match="VisualProbe_Medium"):
        load_visualprobe(root)
    with pytest.raises(ValueError, match="Did you mean 'hard'"):
        load_visualprobe(root, levels=("hrd",))


def test_env_scores_free_form_answers_by_normalised_match(tmp_path):
    root = _write(tmp_path, {"Easy": ROWS["Easy"]})
    env = gym.make("GroundedVQA-v0", dataset="visualprobe", data_dir=str(root / "VisualProbe_Easy"))
    _, info = env.reset(seed=0, options={"sample_id": "easy/0"})
    assert "What is written on the shop sign?" in info["messages"][1]["content"][1]["text"]
    *_, info = env.step(format_answer("Ye Olde"))  # case and the final "." do not matter
    assert info["correct"] is True
    env.reset(seed=0, options={"sample_id": "easy/1"})
    *_, info = env.step(format_answer("8"))  # a number word needs the judge
    assert info["correct"] is False


def test_published_numbers_of_every_level(capsys):
    assert compare_main(["--published", "visualprobe"]) == 0
    out = capsys.readouterr().out
    for level, mini_o3 in (("hard", "48.0"), ("medium", "50.4"), ("easy", "67.0")):
        table = out.split(f"VisualProbe {level} (visualprobe-{level}.json)")[1].split("sources:")[0]
        row = next(line for line in table.splitlines() if line.startswith("Mini-o3 "))
        assert mini_o3 in row.split() and "authors" in row
        assert any(line.startswith("DeepEyes‡") for line in table.splitlines())
