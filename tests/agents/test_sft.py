"""`grounding-gym sft-data` (eval run -> TRL vision dataset) and `grounding-gym sft` (cold
start)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("transformers")
datasets = pytest.importorskip("datasets")
torch = pytest.importorskip("torch")

from agents.policies.tiny_qwen import (  # noqa: E402
    TINY_MAX_PIXELS,
    TINY_MIN_PIXELS,
    tiny_env_kwargs,
    tiny_qwen25vl_path,
)
from agents.sft import row_trajectory, sft_train, write_sft_dataset  # noqa: E402
from grounding_gym.actions import parse_action  # noqa: E402
from grounding_gym.cli import main as cli  # noqa: E402
from grounding_gym.eval.harness import evaluate  # noqa: E402
from grounding_gym.eval.records import read_records, view_sha1  # noqa: E402

ENV_KWARGS = tiny_env_kwargs(
    max_turns=2, dataset_kwargs={"num_samples": 8, "image_size": (256, 512), "seed": 3}
)


def eval_run(out: Path, agent="oracle-crop", env="GroundedVQA-HR-v0", n=4) -> Path:
    evaluate(agent, env, env_kwargs=ENV_KWARGS, n=n, out_dir=out, progress=False, plots=False)
    return out


@pytest.fixture(scope="module")
def oracle_run(tmp_path_factory) -> Path:
    return eval_run(tmp_path_factory.mktemp("runs") / "oracle")


@pytest.fixture(scope="module")
def oracle_data(oracle_run, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("data") / "oracle-sft"
    assert cli(["sft-data", "--from", str(oracle_run), "--out", str(out)]) == 0
    return out


def texts(message: dict) -> str:
    return "".join(p["text"] for p in message["content"] if p["type"] == "text")


def test_sft_data_rows_are_the_recorded_episodes(oracle_run, oracle_data):
    records = read_records(oracle_run / "episodes.jsonl")
    rows = datasets.load_from_disk(str(oracle_data))
    assert {"messages", "images"} <= set(rows.column_names)
    assert len(rows) == len(records) == 4
    for row, record in zip(rows, records, strict=True):
        roles = [m["role"] for m in row["messages"]]
        assert roles == ["system", "user", "assistant", "user", "assistant"]
        image_parts = [p for m in row["messages"] for p in m["content"] if p["type"] == "image"]
        assert len(image_parts) == len(row["images"]) == 1 + record["num_crops"] == 2
        assistant = [texts(m) for m in row["messages"] if m["role"] == "assistant"]
        assert assistant == record["actions"]
        assert [parse_action(a).kind for a in assistant] == ["crop", "answer"]
        # the first image is the view the run saw (PNG round trip is lossless) ...
        assert view_sha1(np.asarray(row["images"][0])) == record["first_view_sha1"]
        # ... and the crop's image has the size its user turn states
        crop_turn = texts(row["messages"][3])
        w, h = map(int, re.search(r"shown at (\d+)x(\d+) px", crop_turn).groups())
        assert row["images"][1].size == (w, h)
        assert row["correct"] == record["correct"] and row["sample_id"] == record["sample_id"]


def test_sft_data_filters(tmp_path):
    run = eval_run(tmp_path / "random", agent="random-crop", n=8)
    records = read_records(run / "episodes.jsonl")
    correct = write_sft_dataset(run, tmp_path / "correct", only_correct=True)
    assert len(correct) == sum(r["correct"] for r in records) > 0
    assert all(correct["correct"])
    min_iou = float(np.median([r["iou"] for r in records]))
    good = write_sft_dataset(run, tmp_path / "iou", min_iou=min_iou)
    assert sorted(good["episode"]) == [r["episode"] for r in records if r["iou"] >= min_iou]
    with pytest.raises(ValueError, match="no episode .* passes the filters"):
        write_sft_dataset(run, tmp_path / "none", min_iou=1.01)
    with pytest.raises(ValueError, match="exists; pass --overwrite"):
        write_sft_dataset(run, tmp_path / "correct")


class ToolCallAgent:
    """Zooms on the whole view with a DeepEyes tool call, then answers A."""

    def act(self, observations, infos):
        out = []
        for info in infos:
            if info["turn"] == 0:
                w, h = info["view_size"]
                args = {"bbox_2d": [0, 0, int(w) // 2, int(h) // 2], "label": "left half"}
                call = json.dumps({"name": "image_zoom_in_tool", "arguments": args})
                out.append(f"<think>zoom</think>\n<tool_call>\n{call}\n</tool_call>")
            else:
                out.append("<answer>A</answer>")
        return out


def test_sft_data_keeps_the_tool_call_chat_format(tmp_path):
    run = eval_run(tmp_path / "deepeyes", agent=ToolCallAgent(), env="GroundedVQA-HR-DeepEyes-v0")
    rows = write_sft_dataset(run, tmp_path / "data")
    row = rows[0]
    assert "<tools>" in texts(row["messages"][0])  # the env's system prompt declares the tool
    assert "<tool_call>" in texts(row["messages"][2])
    response = row["messages"][3]["content"]
    assert [p["type"] for p in response] == ["text", "image", "text"]
    assert response[0]["text"] == "<tool_response>"
    assert len(row["images"]) == 2


def test_sft_data_refuses_a_changed_env_or_a_non_run(tmp_path, oracle_run):
    with pytest.raises(ValueError, match="is not an eval run"):
        write_sft_dataset(tmp_path, tmp_path / "out")
    run = tmp_path / "tampered"
    run.mkdir()
    (run / "config.json").write_text((oracle_run / "config.json").read_text())
    lines = (oracle_run / "episodes.jsonl").read_text().splitlines()
    record = json.loads(lines[0])
    record["first_view_sha1"] = "0" * 16
    (run / "episodes.jsonl").write_text(json.dumps(record) + "\n")
    with pytest.raises(ValueError, match="first view differs"):
        write_sft_dataset(run, tmp_path / "out")


@pytest.fixture(scope="module")
def policy_kwargs() -> dict:
    return {
        "model_name_or_path": tiny_qwen25vl_path(),
        "max_new_tokens": 16,
        "image_min_pixels": TINY_MIN_PIXELS,
        "image_max_pixels": TINY_MAX_PIXELS,
    }


def test_sft_loss_covers_exactly_the_assistant_turns(oracle_data, policy_kwargs):
    from agents.policies.hf import HFPolicy

    policy = HFPolicy(**policy_kwargs)
    row = datasets.load_from_disk(str(oracle_data))[0]
    ids, mask = policy.encode_trajectory(row_trajectory(policy, row))
    trained = policy.tokenizer.decode([i for i, m in zip(ids, mask, strict=True) if m])
    actions = [texts(m) for m in row["messages"] if m["role"] == "assistant"]
    assert trained == "".join(f"{a}<|im_end|>" for a in actions)
    assert sum(mask) < len(ids) / 4  # prompts, images and headers are not trained


def test_sft_cli_writes_a_checkpoint_the_rl_trainer_starts_from(
    tmp_path, oracle_data, policy_kwargs
):
    import yaml

    from agents.config import load_config
    from agents.trainer import Trainer

    config = {
        "env_kwargs": ENV_KWARGS,
        "policy": "hf",
        "policy_kwargs": policy_kwargs,
        "train_samples": 6,
        "eval_samples": 2,
        "num_envs": 2,
        "env_threads": 0,
        "tensorboard": False,
        "progress": False,
    }
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / "sft.pt"
    argv = ["sft", "--config", str(path), "--data", str(oracle_data), "--out", str(out)]
    assert cli(argv + ["--epochs", "2", "--batch-size", "2", "--lr", "3e-3"]) == 0
    state = torch.load(out, map_location="cpu", weights_only=True)
    cfg = load_config(path, [f"init_checkpoint={out}", f"output_dir={tmp_path / 'rl'}"])
    trainer = Trainer(cfg)
    loaded = trainer.policy.state_dict()
    assert loaded.keys() == state.keys()
    assert all(torch.equal(loaded[k], state[k]) for k in state)
    fresh = Trainer(load_config(path, [f"output_dir={tmp_path / 'fresh'}"])).policy.state_dict()
    moved = [k for k in state if not torch.equal(fresh[k], state[k])]
    assert len(moved) > len(state) / 2, "SFT left most weights unchanged"


def test_sft_train_lowers_the_loss(oracle_data, policy_kwargs):
    from agents.policies.hf import HFPolicy

    torch.manual_seed(0)
    policy = HFPolicy(**policy_kwargs)
    rows = datasets.load_from_disk(str(oracle_data))
    losses = sft_train(policy, rows, epochs=6, batch_size=4, lr=3e-3)
    assert len(losses) == 6
    assert losses[-1] < 0.7 * losses[0], losses


def test_trl_sft_trainer_trains_one_step_on_the_rows(tmp_path, oracle_data):
    trl = pytest.importorskip("trl")
    from transformers import AutoModelForImageTextToText

    from agents.policies.hf import load_processor

    path = tiny_qwen25vl_path()
    model = AutoModelForImageTextToText.from_pretrained(path)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    args = trl.SFTConfig(
        output_dir=str(tmp_path / "trl"),
        max_steps=1,
        per_device_train_batch_size=2,
        learning_rate=1e-2,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,
    )
    trainer = trl.SFTTrainer(
        model=model,
        args=args,
        train_dataset=datasets.load_from_disk(str(oracle_data)),
        processing_class=load_processor(path),
    )
    trainer.train()
    assert trainer.state.global_step == 1
    language = [n for n in before if "language_model" in n]
    unchanged = [n for n in language if torch.equal(before[n], model.get_parameter(n))]
    assert not unchanged, f"Parameters {unchanged} have not changed."


@pytest.mark.parametrize("command", ["sft-data", "sft"])
def test_sft_commands_have_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli([command, "--help"])
    assert exit_info.value.code == 0
    assert f"grounding-gym {command}" in capsys.readouterr().out
