"""VisualProbe (Mini-o3): rows read from the published form, errors, env run, published numbers.

The fixture reproduces the structure of a published row (values are our own): Hugging Face
`Mini-o3/VisualProbe_<Level>` holds `val.json`, a JSON list of rows with `images` (one path
relative to the folder holding the level folders: `VisualProbe_Easy/data/visual_probe_easy_0.jpg`),
`problem` ("<image>\\n" then the question), `solution` (free-form), `doc_id` and `data_source`
(`visual_probe_<level>`), and the images under `data/`. Sources: Mini-o3's loader
(github.com/Mini-o3/Mini-o3 @ 8654dbf, verl/utils/dataset/multimodal_dataset.py) and
docs/evaluation.md, section VisualProbe.
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


def row(level: str, n: int, question: str, solution: str, doc_id: int | str | None = None) -> dict:
    """A row in the published form (our own values)."""
    return {
        "images": [f"VisualProbe_{level}/data/visual_probe_{level.lower()}_{n}.jpg"],
        "problem": f"<image>\n{question}",
        "solution": solution,
        "doc_id": n if doc_id is None else doc_id,
        "data_source": f"visual_probe_{level.lower()}",
    }


ROWS = {
    "Easy": [
        row("Easy", 0, "What is written on the shop sign?", "YE OLDE."),
        row("Easy", 1, "How many birds sit on the wire?", "eight"),
    ],
    "Hard": [row("Hard", 0, "What is the code on the container?", "6C71")],
}


def _write(root, rows=ROWS, folders=None):
    """`root/VisualProbe_<Level>/{val.json, data/*.jpg}` (or `folders[level]` for a level)."""
    for level, level_rows in rows.items():
        folder = root / (folders or {}).get(level, f"VisualProbe_{level}")
        (folder / "data").mkdir(parents=True)
        for k in range(len(level_rows)):
            Image.new("RGB", (640, 480), (k * 40, 90, 200)).save(
                folder / "data" / f"visual_probe_{level.lower()}_{k}.jpg"
            )
        (folder / "val.json").write_text(json.dumps(level_rows, indent=2), encoding="utf-8")
    return root


def test_rows_load_from_the_published_layout(tmp_path):
    root = _write(tmp_path)
    samples = load_visualprobe(root, levels=("easy", "hard"))
    assert [s.id for s in samples] == ["easy/0", "easy/1", "hard/0"]
    first = samples[0]
    assert first.question == "What is written on the shop sign?"  # <image> placeholder dropped
    assert first.answer == "YE OLDE." and first.options is None and first.gt_boxes == ()
    assert first.category == "easy" and first.metadata["split"] == "easy"
    assert first.metadata["doc_id"] == 0 and first.image_size == (640, 480)
    assert first.image == str(root / "VisualProbe_Easy" / "data" / "visual_probe_easy_0.jpg")
    assert samples[1].answer == "eight" and samples[2].answer == "6C71"
    one_level = load_visualprobe(root / "VisualProbe_Hard")
    assert [s.id for s in one_level] == ["hard/0"]
    assert [s.id for s in make_dataset("visualprobe", data_dir=root, levels="easy", limit=1)] == [
        "easy/0"
    ]


def test_one_downloaded_level_under_any_folder_name_takes_its_level_from_data_source(tmp_path):
    hard = [row("Hard", 0, "Which floor is lit?", "3rd", doc_id="vp-h-0")]
    _write(tmp_path, {"Hard": hard}, folders={"Hard": "snapshots/bbe9b7a"})  # a Hub snapshot
    samples = load_visualprobe(tmp_path / "snapshots" / "bbe9b7a")
    assert [(s.id, s.category, s.answer) for s in samples] == [("hard/vp-h-0", "hard", "3rd")]
    assert samples[0].image == str(
        tmp_path / "snapshots" / "bbe9b7a" / "data" / "visual_probe_hard_0.jpg"
    )


EASY_IMAGE = ["VisualProbe_Easy/data/visual_probe_easy_0.jpg"]
CONVERTED = {"images": EASY_IMAGE, "question": "q", "answer": "x", "doc_id": 0}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"solution": None}, r"missing field\(s\) \['solution'\]"),
        (None, r"missing field\(s\) \['problem', 'solution'\].*have \['images', 'problem'"),
        ({"images": ["../escape.jpg"]}, "stay inside"),
        ({"images": EASY_IMAGE * 2}, "one image"),
        ({"images": ["VisualProbe_Easy/data/missing.jpg"]}, "not found"),
        ({"data_source": "visual_probe_hard"}, "not the folder's level 'easy'"),
        ({"data_source": "visual_probe_eazy"}, "Did you mean 'visual_probe_easy'"),
        ({"doc_id": [0]}, "'doc_id' must be an int or a string"),
    ],
)
def test_bad_rows_are_refused_with_file_row_and_fix(tmp_path, change, message):
    bad = CONVERTED if change is None else {**ROWS["Easy"][0], **change}
    root = _write(tmp_path, {"Easy": [bad]})
    with pytest.raises(DatasetFormatError, match=message) as info:
        load_visualprobe(root, levels=("easy",))
    assert "val.json, line 2, row 0" in str(info.value)


def test_a_level_needs_its_folder_name_or_data_source(tmp_path):
    bare = {k: v for k, v in ROWS["Hard"][0].items() if k != "data_source"}
    assert load_visualprobe(_write(tmp_path / "a", {"Hard": [bare]}) / "VisualProbe_Hard")
    _write(tmp_path / "b", {"Hard": [bare]}, folders={"Hard": "download"})
    with pytest.raises(DatasetFormatError, match="no level.*has no 'data_source'"):
        load_visualprobe(tmp_path / "b" / "download")


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
    for said, correct in (("8", True), ("Eight.", True), ("8.0", True), ("9", False)):
        env.reset(seed=0, options={"sample_id": "easy/1"})  # gold: "eight"
        *_, info = env.step(format_answer(said))
        assert info["correct"] is correct, said


def test_published_numbers_of_every_level(capsys):
    assert compare_main(["--published", "visualprobe"]) == 0
    out = capsys.readouterr().out
    for level, mini_o3 in (("hard", "48.0"), ("medium", "50.4"), ("easy", "67.0")):
        table = out.split(f"VisualProbe {level} (visualprobe-{level}.json)")[1].split("sources:")[0]
        row = next(line for line in table.splitlines() if line.startswith("Mini-o3 "))
        assert mini_o3 in row.split() and "authors" in row
        assert any(line.startswith("DeepEyes‡") for line in table.splitlines())
