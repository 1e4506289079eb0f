"""Benchmark harness: plan, records (torn lines), resume, metrics, reports, comparison, registry."""

from __future__ import annotations

import json
import math

import gymnasium as gym
import numpy as np
import pytest

import grounding_gym  # noqa: F401  (registers the ids)
from grounding_gym.actions import format_answer
from grounding_gym.data import Sample
from grounding_gym.envs.grounded_vqa import GroundedVQAEnv
from grounding_gym.eval import (
    PolicyAgent,
    compare_table,
    episode_plan,
    evaluate,
    get_agent_spec,
    list_agents,
    load_summary,
    make_agent,
    make_eval_env,
    read_records,
    register_agent,
    summarize,
)
from grounding_gym.eval.metrics import cycle_accuracy, group_metrics
from grounding_gym.eval.records import append_record
from grounding_gym.eval.report import summary_csv, summary_markdown
from grounding_gym.geometry import Box
from tests.conftest import toy_samples

# Small synthetic images, a small view budget: targets of 14-45 original px are 7-22 view px in
# the first view (illegible), while a crop shows them at >= 56 view px.
SMALL_HR = {
    "dataset_kwargs": {"num_samples": 64, "image_size": 1024, "target_rel_area": [2e-4, 2e-3]},
    "env_kwargs": {"max_pixels": 512 * 512},
}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class CountingAgent:
    """Answers "A" at once and counts the observations it saw."""

    def __init__(self) -> None:
        self.calls = 0

    def act(self, observations, infos):
        self.calls += len(observations)
        return [format_answer("A") for _ in observations]


# ---------------------------------------------------------------- plan and records


def test_episode_plan_is_seeded_and_prefix_stable():
    plan = episode_plan(3, 25, 10)
    assert plan[:10] == sorted(plan[:10], key=plan[:10].index) and sorted(plan[:10]) == list(
        range(10)
    )
    assert episode_plan(3, 7, 10) == plan[:7]
    assert episode_plan(4, 25, 10) != plan
    assert len(plan) == 25 and sorted(plan[10:20]) == list(range(10))  # repeats as permutations


def test_read_records_drops_and_cuts_a_torn_last_line(tmp_path):
    path = tmp_path / "episodes.jsonl"
    for i in range(3):
        append_record(path, {"episode": i, "correct": True})
    good_size = path.stat().st_size
    with open(path, "ab") as handle:
        handle.write(b'{"episode": 3, "corr')  # killed mid-write
    records = read_records(path)
    assert [r["episode"] for r in records] == [0, 1, 2]
    assert path.stat().st_size == good_size  # repaired: appending starts on a fresh line
    append_record(path, {"episode": 3})
    assert [r["episode"] for r in read_records(path)] == [0, 1, 2, 3]


def test_read_records_rejects_a_corrupt_middle_line(tmp_path):
    path = tmp_path / "episodes.jsonl"
    path.write_text('{"episode": 0}\nnot json\n{"episode": 2}\n')
    with pytest.raises(ValueError, match="line 2"):
        read_records(path)


def test_read_records_keeps_first_of_duplicates(tmp_path):
    path = tmp_path / "episodes.jsonl"
    path.write_text('{"episode": 0, "v": 1}\n{"episode": 0, "v": 2}\n')
    assert read_records(path) == [{"episode": 0, "v": 1}]


# ---------------------------------------------------------------- metrics


AREA_OF_BIN = {"small": 0.01, "medium": 0.2, "large": 0.5, None: None}


def _rec(episode, correct, bin_name="small", iou=None, coverage=None, turns=1, invalid=0, **kw):
    return {
        "episode": episode,
        "correct": correct,
        "answered": True,
        "target_scale_bin": bin_name,
        "target_rel_area": AREA_OF_BIN[bin_name],
        "gt_boxes": [[0, 0, 1, 1]],
        "iou": iou,
        "coverage": coverage,
        "turns": turns,
        "num_crops": 0 if iou is None else 1,
        "invalid_actions": invalid,
        "category": "c",
        **kw,
    }


def test_group_metrics_by_hand():
    records = [
        _rec(0, True, iou=0.8, coverage=1.0, turns=2),
        _rec(1, False, iou=0.3, coverage=0.5, turns=3, invalid=1),
        _rec(2, True),  # no crop: IoU 0 in mIoU, excluded from crop_iou
        _rec(3, False),
    ]
    m = group_metrics(records)
    assert m["n"] == 4 and m["accuracy"] == 0.5
    assert m["accuracy_se"] == pytest.approx(math.sqrt(0.25 / 4))
    assert m["miou"] == pytest.approx((0.8 + 0.3) / 4)
    assert m["acc_at_0.5"] == pytest.approx(0.25)
    assert m["crop_iou"] == pytest.approx(0.55) and m["crop_coverage"] == pytest.approx(0.75)
    assert m["full_coverage_rate"] == pytest.approx(0.5)
    assert m["mean_turns"] == pytest.approx(7 / 4) and m["invalid_action_rate"] == pytest.approx(
        1 / 7
    )
    assert m["crop_rate"] == 0.5


def test_summarize_bins_categories_and_cycles():
    records = [
        _rec(0, True, "small", cycle_id="q1"),
        _rec(1, False, "small", cycle_id="q1"),
        _rec(2, True, "medium", cycle_id="q2"),
        _rec(3, True, None, gt_boxes=[], cycle_id="q2"),
    ]
    s = summarize(records)
    assert list(s["per_bin"]) == ["small", "medium", "large", "no-box"]
    assert s["per_bin"]["small"]["accuracy"] == 0.5 and s["per_bin"]["large"]["n"] == 0
    assert s["per_bin"]["no-box"]["n"] == 1 and s["per_bin"]["no-box"]["miou"] is None
    assert s["cycle"] == {"cycle_accuracy": 0.75, "cycle_accuracy_all": 0.5, "n_questions": 2}
    assert cycle_accuracy([{"correct": True}]) is None
    fine = summarize(records, bin_edges=(0.05, 0.15, 0.25))  # re-binned from target_rel_area
    assert list(fine["per_bin"]) == ["[0,0.05)", "[0.05,0.15)", "[0.15,0.25)", "[0.25,1)", "no-box"]
    assert fine["per_bin"]["[0,0.05)"]["n"] == 2 and fine["per_bin"]["[0.15,0.25)"]["n"] == 1


# ---------------------------------------------------------------- evaluate


def test_oracle_beats_no_crop_on_small_targets_with_full_coverage(tmp_path):
    results = {}
    for name in ("oracle-crop", "no-crop"):
        results[name] = evaluate(
            name, "GroundedVQA-HR-v0", n=16, out_dir=tmp_path / name, progress=False, **SMALL_HR
        )
    oracle, no_crop = results["oracle-crop"], results["no-crop"]
    assert oracle["overall"]["n"] == no_crop["overall"]["n"] == 16
    assert oracle["per_bin"]["small"]["accuracy"] > no_crop["per_bin"]["small"]["accuracy"] + 0.3
    assert (
        oracle["overall"]["crop_coverage"] == 1.0 and oracle["overall"]["full_coverage_rate"] == 1.0
    )
    assert no_crop["overall"]["crop_rate"] == 0.0 and no_crop["overall"]["miou"] == 0.0
    for record in read_records(tmp_path / "oracle-crop" / "episodes.jsonl"):
        gt = Box(*record["gt_boxes"][0])
        assert record["coverage"] == 1.0
        if min(gt.width, gt.height) >= 28:  # exact up to 0.01 view px of outward rounding
            assert record["iou"] > 0.99
        else:  # targets below min_crop get a larger crop
            assert record["iou"] < 0.99
    files = {p.name for p in (tmp_path / "oracle-crop").iterdir()}
    assert {
        "episodes.jsonl",
        "config.json",
        "summary.json",
        "summary.csv",
        "summary.md",
        "acc_vs_area.png",
        "iou_hist.png",
    } <= files
    assert not [f for f in files if f.endswith(".tmp")]
    assert (tmp_path / "oracle-crop" / "iou_hist.png").read_bytes()[:8] == PNG_MAGIC
    meta = load_summary(tmp_path / "oracle-crop")["meta"]
    assert meta["benchmark"] == "synthetic-hr" and meta["resize_backend"] in ("pil", "opencv")


def test_record_contents(tmp_path):
    evaluate(
        "oracle-crop",
        "GroundedVQA-HR-v0",
        n=2,
        out_dir=tmp_path,
        progress=False,
        plots=False,
        **SMALL_HR,
    )
    record = read_records(tmp_path / "episodes.jsonl")[0]
    assert record["episode"] == 0 and record["turns"] == 2
    assert record["action_kinds"] == ["crop", "answer"] and record["actions"][0].startswith(
        "<crop>"
    )
    assert len(record["crop_boxes"]) == 1 and record["num_crops"] == 1
    assert record["target_scale_bin"] == "small" and record["crop_scale_bins"] == ["small"]
    assert record["reward_terms"]["format"] == 1.0 and record["answered"] and record["terminated"]
    assert record["gt_answer"] in "ABCD" and record["num_options"] == 4
    assert record["sample_id"].startswith("synthetic-hr-") and record["category"] in (
        "read",
        "search",
    )


def test_resume_runs_only_missing_episodes(tmp_path):
    first = CountingAgent()
    evaluate(
        first, "GroundedVQA-HR-v0", n=5, out_dir=tmp_path, progress=False, plots=False, **SMALL_HR
    )
    assert first.calls == 5
    second = CountingAgent()
    summary = evaluate(
        second, "GroundedVQA-HR-v0", n=9, out_dir=tmp_path, progress=False, plots=False, **SMALL_HR
    )
    assert second.calls == 4 and summary["overall"]["n"] == 9
    episodes = [r["episode"] for r in read_records(tmp_path / "episodes.jsonl")]
    assert sorted(episodes) == list(range(9))
    third = CountingAgent()
    evaluate(
        third, "GroundedVQA-HR-v0", n=9, out_dir=tmp_path, progress=False, plots=False, **SMALL_HR
    )
    assert third.calls == 0


class Crash(KeyboardInterrupt):
    """Stands in for a kill (Ctrl-C) mid-evaluation: not an `Exception`, so `on_error` does not
    catch it."""


class RandomCropUntilCrash:
    """`random-crop` (seeded per episode), except that it answers at once in episodes 1, 4, 7, ...
    so episodes differ in length and end out of order; raises `Crash` on its `crash_at`-th call."""

    def __init__(self, env: gym.Env, crash_at: int | None = None) -> None:
        self.agent, self.crash_at, self.calls = make_agent("random-crop", env), crash_at, 0

    def act(self, observations, infos):
        self.calls += 1
        if self.calls == self.crash_at:
            raise Crash
        actions = self.agent.act(observations, infos)
        return [
            format_answer("C") if info["episode"] % 3 == 1 else action
            for action, info in zip(actions, infos, strict=True)
        ]


def episode_records(out) -> list[dict]:
    """`episodes.jsonl` in episode order, without the wall-clock timings."""
    records = sorted(read_records(out / "episodes.jsonl"), key=lambda r: r["episode"])
    return [{k: v for k, v in r.items() if k != "elapsed_s"} for r in records]


def test_a_resumed_evaluation_equals_an_uninterrupted_one_record_by_record(tmp_path):
    """A crash leaves holes anywhere (3 envs finish episodes out of order); the rerun must give
    each missing episode its own sample and seed, so every record matches a straight run's."""
    env, _, _ = make_eval_env(
        "GroundedVQA-HR-v0",
        dataset_kwargs=SMALL_HR["dataset_kwargs"],
        env_kwargs=SMALL_HR["env_kwargs"],
    )
    kwargs = {"n": 12, "num_envs": 3, "progress": False, "plots": False, **SMALL_HR}
    straight = evaluate(
        RandomCropUntilCrash(env), "GroundedVQA-HR-v0", out_dir=tmp_path / "straight", **kwargs
    )
    with pytest.raises(Crash):
        evaluate(
            RandomCropUntilCrash(env, crash_at=5),
            "GroundedVQA-HR-v0",
            out_dir=tmp_path / "resumed",
            **kwargs,
        )
    done = [r["episode"] for r in read_records(tmp_path / "resumed" / "episodes.jsonl")]
    assert 3 <= len(done) < 12 and sorted(done) != list(range(len(done))), (
        f"the crash should leave a hole before the last finished episode: {sorted(done)}"
    )
    resumed = evaluate(
        RandomCropUntilCrash(env), "GroundedVQA-HR-v0", out_dir=tmp_path / "resumed", **kwargs
    )
    expected, got = episode_records(tmp_path / "straight"), episode_records(tmp_path / "resumed")
    assert [r["episode"] for r in got] == list(range(12))
    for want, have in zip(expected, got, strict=True):
        assert have == want, f"episode {want['episode']} differs after the resume"
    assert resumed["overall"] == straight["overall"]
    env.close()


def test_a_different_evaluation_in_the_folder_raises_unless_overwrite(tmp_path):
    evaluate(
        CountingAgent(),
        "GroundedVQA-HR-v0",
        n=2,
        out_dir=tmp_path,
        progress=False,
        plots=False,
        **SMALL_HR,
    )
    with pytest.raises(ValueError, match="different evaluation.*seed"):
        evaluate(
            CountingAgent(),
            "GroundedVQA-HR-v0",
            n=2,
            out_dir=tmp_path,
            seed=5,
            progress=False,
            **SMALL_HR,
        )
    summary = evaluate(
        CountingAgent(),
        "GroundedVQA-HR-v0",
        n=3,
        out_dir=tmp_path,
        seed=5,
        overwrite=True,
        progress=False,
        plots=False,
        **SMALL_HR,
    )
    assert summary["meta"]["seed"] == 5 and len(read_records(tmp_path / "episodes.jsonl")) == 3


def test_a_resume_may_change_the_image_budget_but_not_the_env(tmp_path):
    """`image_cache_bytes` changes memory, not views: a resume with another budget continues;
    any other env kwarg is a different evaluation."""

    def run(agent, n, **env_kwargs):
        kwargs = {**SMALL_HR, "env_kwargs": {**SMALL_HR["env_kwargs"], **env_kwargs}}
        return evaluate(
            agent, "GroundedVQA-HR-v0", n=n, out_dir=tmp_path, progress=False, plots=False, **kwargs
        )

    run(CountingAgent(), 2, image_cache_bytes=2**26)
    resumed = CountingAgent()
    summary = run(resumed, 3)
    assert resumed.calls == 1 and summary["overall"]["n"] == 3
    with pytest.raises(ValueError, match="different evaluation.*env_kwargs"):
        run(CountingAgent(), 3, max_turns=2)


def test_vector_envs_give_the_same_episodes(tmp_path):
    one = evaluate(
        "random-crop",
        "GroundedVQA-HR-v0",
        n=6,
        out_dir=tmp_path / "a",
        progress=False,
        plots=False,
        **SMALL_HR,
    )
    three = evaluate(
        "random-crop",
        "GroundedVQA-HR-v0",
        n=6,
        num_envs=3,
        out_dir=tmp_path / "b",
        progress=False,
        plots=False,
        **SMALL_HR,
    )
    keep = ("episode", "sample_id", "actions", "crop_boxes", "correct")
    a = sorted(
        ({k: r[k] for k in keep} for r in read_records(tmp_path / "a" / "episodes.jsonl")),
        key=lambda r: r["episode"],
    )
    b = sorted(
        ({k: r[k] for k in keep} for r in read_records(tmp_path / "b" / "episodes.jsonl")),
        key=lambda r: r["episode"],
    )
    assert a == b and one["overall"]["accuracy"] == three["overall"]["accuracy"]


def test_in_memory_env_instance_and_hrbench_cycles():
    samples = [
        Sample(
            id=f"r{i}",
            image=s.image,
            question=s.question,
            answer="A" if i % 2 == 0 else "B",
            options=s.options,
            category="toy",
            metadata={"cycle_id": f"q{i // 2}"},
        )
        for i, s in enumerate(toy_samples(4))
    ]
    env = GroundedVQAEnv(samples, max_pixels=128 * 128)
    summary = evaluate(CountingAgent(), env, progress=False)  # answers "A": right on rotations 0, 2
    assert summary["overall"]["n"] == 4 and summary["overall"]["accuracy"] == 0.5
    assert (
        summary["cycle"]["cycle_accuracy"] == 0.5 and summary["cycle"]["cycle_accuracy_all"] == 0.0
    )
    assert list(summary["per_bin"]) == ["small", "medium", "large", "no-box"]


def test_agent_returning_wrong_batch_size_raises():
    class Bad:
        def act(self, observations, infos):
            return []

    with pytest.raises(ValueError, match="0 actions for 1"):
        evaluate(Bad(), "GroundedVQA-HR-v0", n=1, progress=False, **SMALL_HR)


# ---------------------------------------------------------------- agents


def test_registry_lists_builtins_and_suggests():
    assert {"no-crop", "random-crop", "sliding-window", "oracle-crop", "sb3-ppo"} <= set(
        list_agents()
    )
    with pytest.raises(ValueError, match="Did you mean 'oracle-crop'"):
        get_agent_spec("oracle-crp")
    register_agent("test-counting", lambda env, **kw: CountingAgent())
    register_agent("test-counting", get_agent_spec("test-counting").target)  # same factory: no-op
    with pytest.raises(ValueError, match="already registered"):
        register_agent("test-counting", lambda env: CountingAgent())
    env = gym.make(
        "GroundedVQA-HR-v0", dataset_kwargs=SMALL_HR["dataset_kwargs"], **SMALL_HR["env_kwargs"]
    )
    assert isinstance(make_agent("test-counting", env), CountingAgent)
    assert isinstance(
        make_agent("tests.grounding_gym.eval.test_eval:CountingAgentFactory", env), CountingAgent
    )


def CountingAgentFactory(env):  # noqa: N802 - a factory referenced by "module:attr" above
    return CountingAgent()


def test_policy_agent_adapts_generations():
    class Gen:
        def __init__(self, text):
            self.text = text

    class FakePolicy:
        def act(self, observations, infos, *, greedy=False):
            assert greedy is True
            return [Gen(format_answer("C")) for _ in observations]

    assert PolicyAgent(FakePolicy()).act([{}, {}], [{}, {}]) == ["<answer>C</answer>"] * 2


# ---------------------------------------------------------------- reports


def test_tables_and_compare_deltas():
    a = summarize([_rec(0, True), _rec(1, True), _rec(2, False, "medium")], meta={"agent": "mine"})
    b = summarize([_rec(0, False), _rec(1, True), _rec(2, True, "medium")], meta={"agent": "base"})
    table = compare_table([a, b])
    lines = {line.split()[0]: line.split() for line in table.splitlines()[3:]}
    # accuracy cells carry a 95 % interval ("100.0 [34.2, 100.0]"): values at 2 and 5, Δ last
    assert [lines["small"][i] for i in (2, 5, -1)] == ["100.0", "50.0", "-50.0"]
    assert [lines["medium"][i] for i in (2, 5, -1)] == ["0.0", "100.0", "+100.0"]
    assert "Δ = run - mine" in table
    md = compare_table([a, b], metric="miou", markdown=True)
    assert "| small |" in md
    with pytest.raises(ValueError, match="unknown metric"):
        compare_table([a], metric="acc")
    assert "| bin | small | 2 | 100.0 |" in summary_markdown(a)
    assert summary_csv(a).splitlines()[0].startswith("group,name,n,accuracy")


def test_summary_json_is_strict_json(tmp_path):
    evaluate(
        CountingAgent(),
        "GroundedVQA-HR-v0",
        n=2,
        out_dir=tmp_path,
        progress=False,
        plots=False,
        **SMALL_HR,
    )
    text = (tmp_path / "summary.json").read_text()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert np.isfinite(json.loads(text)["overall"]["accuracy"])


def test_hrbench_tsv_through_the_registry_reports_cycle_accuracy(tmp_path):
    from grounding_gym.data.loaders import load_hrbench
    from tests.grounding_gym.data.formats.test_loaders import (
        HR_COLUMNS,
        hr_images,
        hrbench_rows,
        write_tsv,
    )

    path = write_tsv(tmp_path / "hr_bench_4k.tsv", HR_COLUMNS, hrbench_rows(hr_images()))
    summary = evaluate(
        "no-crop",
        "GroundedVQA-HR-v0",
        dataset="hrbench",
        env_kwargs={"data_dir": str(path)},
        out_dir=tmp_path / "run",
        progress=False,
    )
    samples = load_hrbench(path)  # no reader for real data: no-crop answers "A"
    by_question: dict[str, list[bool]] = {}
    for s in samples:
        by_question.setdefault(s.metadata["cycle_id"], []).append(s.answer == "A")
    expected = np.mean([np.mean(v) for v in by_question.values()])
    assert summary["overall"]["n"] == 8 and summary["overall"]["accuracy"] == np.mean(
        [s.answer == "A" for s in samples]
    )
    assert summary["cycle"]["n_questions"] == 2 and summary["cycle"][
        "cycle_accuracy"
    ] == pytest.approx(expected)
    assert summary["per_bin"]["no-box"]["n"] == 8 and summary["overall"]["miou"] is None
    assert set(summary["per_category"]) == {"FSP", "FCP"}
    assert (tmp_path / "run" / "summary.md").read_text().count("HR-Bench cycle accuracy") == 1
