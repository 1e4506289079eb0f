"""The `replay` eval agent: recorded chat conversations, stepped through the env, scored by hand.

Fixtures: a V*-layout folder drawn in code (file option order, so the correct answer is "A") and
JSONL files of recorded episodes in the published chat format (OpenAI-style messages, Qwen
`<tool_call>` crops in original px, free-text final answers).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from grounding_gym.cli import main
from grounding_gym.eval import evaluate, read_records
from grounding_gym.eval.replay import assistant_actions
from grounding_gym.geometry import Box, iou

SIZE = (1200, 900)
CUP = Box(600, 400, 660, 450)  # original px xyxy
QUESTION = "What is the colour of the cup?"
OPTIONS = ["red", "blue", "green", "white"]
VSTAR = {"dataset": "vstar", "dataset_kwargs": {"option_seed": None}}


def write_vstar(root: Path) -> Path:
    """Three attribute questions (the same question about three images) and one relative one."""
    for folder in ("direct_attributes", "relative_position"):
        (root / folder).mkdir(parents=True)
    x, y, w, h = CUP.x1, CUP.y1, CUP.width, CUP.height
    for stem in ("sa_100", "sa_101", "sa_102"):
        Image.new("RGB", SIZE, (250, 250, 250)).save(root / "direct_attributes" / f"{stem}.jpg")
        record = {
            "target_object": ["cup"],
            "bbox": [[x, y, w, h]],
            "question": QUESTION,
            "options": OPTIONS,
        }
        (root / "direct_attributes" / f"{stem}.json").write_text(json.dumps(record))
    Image.new("RGB", SIZE, (250, 250, 250)).save(root / "relative_position" / "sa_7.jpg")
    record = {
        "target_object": ["cup", "dog"],
        "bbox": [[x, y, w, h]],
        "question": "Is the cup left or right of the dog?",
        "options": ["left", "right"],
    }
    (root / "relative_position" / "sa_7.json").write_text(json.dumps(record))
    return root


def zoom(box: list[float]) -> str:
    call = {"name": "image_zoom_in_tool", "arguments": {"bbox_2d": box, "label": "cup"}}
    return f"<think>The cup is small.</think>\n<tool_call>\n{json.dumps(call)}\n</tool_call>"


def chat(image: str, question: str, *assistant: object) -> dict:
    """One recorded episode: system + user turn, then each assistant text (tool results between)."""
    messages: list[dict] = [
        {"role": "system", "content": "You are a helpful assistant."},
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": image}},
                {"type": "text", "text": f"{question}\n(A) red\n(B) blue"},
            ],
        },
    ]
    for text in assistant:
        messages.append({"role": "assistant", "content": text} if isinstance(text, str) else text)
        messages.append(
            {"role": "user", "content": [{"type": "text", "text": "Here is the zoomed view."}]}
        )
    return {"image": image, "question": question, "messages": messages}


FIRST, SECOND = [560.0, 360.0, 760.0, 520.0], [590.0, 390.0, 680.0, 470.0]
THIRD, FOURTH = [100.0, 100.0, 300.0, 260.0], [580.0, 380.0, 700.0, 480.0]


def recorded_episodes() -> list[dict]:
    return [
        # Two crops, then a free-text answer: "A. The cup is red." -> A (correct, file order).
        chat("images/sa_100.jpg", QUESTION, zoom(FIRST), zoom(SECOND), "A. The cup is red."),
        # The same question about another image (matched by image name): one crop, a wrong answer
        # given as a content-part list.
        chat(
            "sa_101.jpg",
            "  What is the colour\nof the cup? ",
            zoom(THIRD),
            {"role": "assistant", "content": [{"type": "text", "text": "<answer>B</answer>"}]},
        ),
        # No answer: one crop (an OpenAI tool_calls entry), then the recording stops.
        chat(
            "sa_102.jpg",
            QUESTION,
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "type": "function",
                        "function": {
                            "name": "image_zoom_in_tool",
                            "arguments": json.dumps({"bbox_2d": FOURTH}),
                        },
                    }
                ],
            },
        ),
        chat("elsewhere.jpg", QUESTION, "A"),  # matches no sample
        chat("sa_100.jpg", QUESTION, "<answer>D</answer>"),  # a second line for sa_100
    ]


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def by_sample(out: Path) -> dict[str, dict]:
    return {r["sample_id"]: r for r in read_records(out / "episodes.jsonl")}


def test_assistant_actions_resolve_a_free_text_final_answer():
    messages = [
        {"role": "assistant", "content": zoom(FIRST)},
        {"role": "assistant", "content": "<think>white it is</think> A. The cap is white."},
    ]
    assert assistant_actions(messages) == [zoom(FIRST), "<answer>A. The cap is white.</answer>"]
    assert assistant_actions([{"role": "assistant", "content": zoom(FIRST)}]) == [
        zoom(FIRST)
    ]  # a crop stays


def test_replay_reproduces_hand_computed_accuracy_and_crops(tmp_path):
    root = write_vstar(tmp_path / "vstar")
    path = write_jsonl(tmp_path / "outputs.jsonl", recorded_episodes())

    def replay() -> dict:
        return evaluate(
            "replay",
            "GroundedVQA-HR-v0",
            env_kwargs={"coord_frame": "original", "data_dir": str(root)},
            agent_kwargs={"path": str(path), "match": "image+question"},
            out_dir=tmp_path / "run",
            progress=False,
            plots=False,
            **VSTAR,
        )

    with pytest.warns(
        UserWarning, match="1 unmatched lines .*1 duplicate lines .*1 samples without a line"
    ):
        summary = replay()
    records = by_sample(tmp_path / "run")
    assert sorted(records) == [
        "direct_attributes/sa_100",
        "direct_attributes/sa_101",
        "direct_attributes/sa_102",
        "relative_position/sa_7",
    ]
    # By hand: crops in original px are cut as written (inside the view, above min_crop).
    first = records["direct_attributes/sa_100"]
    assert (
        first["crop_boxes"] == [FIRST, SECOND]
        and first["answer"] == "A. The cup is red."
        and first["correct"]
    )
    assert first["iou"] == pytest.approx(iou(Box(*SECOND), CUP))  # the best of the two
    assert first["coverage"] == 1.0  # both crops hold the whole cup
    second = records["direct_attributes/sa_101"]
    assert second["crop_boxes"] == [THIRD] and second["answered"] and not second["correct"]
    assert second["iou"] == 0.0
    third = records["direct_attributes/sa_102"]
    assert (
        third["crop_boxes"] == [FOURTH]
        and not third["answered"]
        and third["truncated"]
        and third["turns"] == 1
    )
    unmatched = records["relative_position/sa_7"]
    assert unmatched["turns"] == 0 and not unmatched["answered"] and not unmatched["correct"]
    assert summary["overall"]["accuracy"] == pytest.approx(1 / 4)
    assert summary["overall"]["invalid_action_rate"] == 0.0
    report = summary["meta"]["agent_report"]
    assert report["lines"] == 5 and report["matched"] == 3
    assert report["unmatched_lines"] == [4] and report["duplicate_lines"] == [5]
    assert report["samples_without_line"] == 1 and report["ambiguous_lines"] == []
    # Re-running the finished run re-summarises it without rebuilding the agent: the report stays.
    again = replay()
    assert again["meta"]["agent_report"] == report and again["overall"] == summary["overall"]


def test_replay_by_id_and_a_line_matching_two_samples(tmp_path):
    root = write_vstar(tmp_path / "vstar")
    by_id = [
        {
            "sample_id": "direct_attributes/sa_101",
            "messages": [{"role": "assistant", "content": "(A)"}],
        },
        {
            "id": "relative_position/sa_7",
            "messages": [{"role": "assistant", "content": "B. right"}],
        },
    ]
    path = write_jsonl(tmp_path / "by_id.jsonl", by_id)
    with pytest.warns(UserWarning, match="2 samples without a line"):
        summary = evaluate(
            "replay",
            "GroundedVQA-HR-v0",
            env_kwargs={"data_dir": str(root)},
            agent_kwargs={"path": str(path)},
            progress=False,
            plots=False,
            **VSTAR,
        )
    assert summary["overall"]["n"] == 4 and summary["overall"]["accuracy"] == pytest.approx(1 / 4)
    # The same image name and question in two folders: the line matches both, so it is not guessed.
    (root / "relative_position" / "sa_100.jpg").write_bytes(
        (root / "direct_attributes" / "sa_100.jpg").read_bytes()
    )
    (root / "relative_position" / "sa_100.json").write_text(
        (root / "direct_attributes" / "sa_100.json").read_text()
    )
    line = chat("sa_100.jpg", QUESTION, "A")
    line["image"] = ["/data/sa_100.jpg"]  # a list of images: the first one's file name is matched
    path = write_jsonl(tmp_path / "amb.jsonl", [line, chat("sa_101.jpg", QUESTION, "A")])
    with pytest.warns(UserWarning, match="1 ambiguous lines"):
        summary = evaluate(
            "replay",
            "GroundedVQA-HR-v0",
            env_kwargs={"data_dir": str(root)},
            agent_kwargs={"path": str(path), "match": "image+question"},
            progress=False,
            plots=False,
            **VSTAR,
        )
    report = summary["meta"]["agent_report"]
    assert report["ambiguous_lines"] == [1] and report["matched"] == 1


def test_replay_errors_name_file_line_and_field(tmp_path):
    root = write_vstar(tmp_path / "vstar")
    kwargs = {"env_kwargs": {"data_dir": str(root)}, "progress": False, "plots": False, **VSTAR}
    bad = write_jsonl(
        tmp_path / "bad.jsonl", [{"id": "direct_attributes/sa_100", "conversation": []}]
    )
    with pytest.raises(
        ValueError, match=r"bad.jsonl, line 1: field 'messages' must be a list.*messages_key"
    ):
        evaluate("replay", "GroundedVQA-HR-v0", agent_kwargs={"path": str(bad)}, **kwargs)
    no_id = write_jsonl(tmp_path / "no_id.jsonl", [{"messages": []}])
    with pytest.raises(ValueError, match=r"no_id.jsonl, line 1: no field 'sample_id' or 'id'"):
        evaluate("replay", "GroundedVQA-HR-v0", agent_kwargs={"path": str(no_id)}, **kwargs)
    with pytest.raises(ValueError, match="match='both' is not one of"):
        evaluate(
            "replay",
            "GroundedVQA-HR-v0",
            agent_kwargs={"path": str(no_id), "match": "both"},
            **kwargs,
        )


@pytest.mark.slow
def test_cli_replay_then_render(tmp_path, capsys):
    root = write_vstar(tmp_path / "vstar")
    path = write_jsonl(tmp_path / "outputs.jsonl", recorded_episodes()[:3])
    out = tmp_path / "run"
    with pytest.warns(UserWarning):
        code = main(
            [
                "eval",
                "--agent",
                "replay",
                "--dataset",
                "vstar",
                "--data-dir",
                str(root),
                "--dataset-kwargs",
                '{"option_seed": null}',
                "--env-kwargs",
                '{"coord_frame": "original"}',
                "--agent-kwargs",
                json.dumps({"path": str(path), "match": "image+question"}),
                "--out",
                str(out),
                "--no-progress",
                "--no-plots",
            ]
        )
    assert code == 0
    assert "replay" in capsys.readouterr().out
    episode = next(
        r["episode"] for r in read_records(out / "episodes.jsonl") if r["num_crops"] == 2
    )
    assert (
        main(
            [
                "render",
                "--run",
                str(out),
                "--episode",
                str(episode),
                "--out",
                str(tmp_path / "e.png"),
            ]
        )
        == 0
    )
    assert (tmp_path / "e.png").stat().st_size > 0
