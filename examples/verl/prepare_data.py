"""Write verl parquet files for grounding-gym episodes: one row per env sample.

Each row names the sample the agent loop resets the env to (``extra_info["sample_id"]``) and
the env's dataset (``extra_info["env_kwargs"]``); the env itself builds the dialogue and images,
so ``prompt`` (the question) is only there for verl's dataset bookkeeping and logs.

    python examples/verl/prepare_data.py --out ~/data/grounding_gym \
        --train synthetic-hr --train-kwargs '{"num_samples": 4096, "seed": 0}' \
        --val vstar --val-data-dir /data/vstar_bench

Defaults: train on 4096 `synthetic-hr` samples (V*-style: small targets in 2K-8K images, 4-way
multiple choice), validate on 256 others (seed 1). Use `--train/--val` with any registered
dataset (`grounding_gym.data.list_datasets()`: vstar, hrbench, ...) and its `--*-data-dir`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from agents.integrations.verl import AGENT_LOOP_NAME
from grounding_gym.atomic import atomic_open
from grounding_gym.data import make_dataset


def rows(
    dataset: str, dataset_kwargs: dict[str, Any], data_dir: str | None, split: str
) -> list[dict[str, Any]]:
    """verl rows (RLHFDataset schema) for every sample of ``dataset``."""
    env_kwargs: dict[str, Any] = {"dataset": dataset, "dataset_kwargs": dataset_kwargs or None}
    if data_dir is not None:
        env_kwargs["data_dir"] = data_dir
    samples = make_dataset(
        dataset, **dataset_kwargs, **({"data_dir": data_dir} if data_dir else {})
    )
    return [
        {
            "data_source": f"grounding_gym/{dataset}",
            "agent_name": AGENT_LOOP_NAME,
            "prompt": [{"role": "user", "content": sample.question}],
            "ability": "grounded_vqa",
            "reward_model": {"style": "env", "ground_truth": sample.answer},
            "extra_info": {
                "index": index,
                "split": split,
                "sample_id": sample.id,
                "env_kwargs": env_kwargs,
            },
        }
        for index, sample in enumerate(samples)
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="folder for train.parquet and val.parquet"
    )
    parser.add_argument("--train", default="synthetic-hr", help="registered dataset name")
    parser.add_argument("--train-kwargs", type=json.loads, default={"num_samples": 4096, "seed": 0})
    parser.add_argument("--train-data-dir", default=None)
    parser.add_argument("--val", default="synthetic-hr", help="registered dataset name, e.g. vstar")
    parser.add_argument(
        "--val-kwargs",
        type=json.loads,
        default=None,
        help="default: 256 samples, seed 1 for synthetic-hr",
    )
    parser.add_argument("--val-data-dir", default=None)
    args = parser.parse_args(argv)
    val_kwargs = args.val_kwargs
    if val_kwargs is None:
        val_kwargs = {"num_samples": 256, "seed": 1} if args.val == "synthetic-hr" else {}
    args.out.mkdir(parents=True, exist_ok=True)
    for split, name, kwargs, data_dir in (
        ("train", args.train, args.train_kwargs, args.train_data_dir),
        ("val", args.val, val_kwargs, args.val_data_dir),
    ):
        table = pa.Table.from_pylist(rows(name, kwargs, data_dir, split))
        # atomic: run_qwen25vl7b.sh skips this script once train.parquet exists, so a half-written
        # file from an interrupted run must never be left there
        with atomic_open(args.out / f"{split}.parquet", "wb") as handle:
            pq.write_table(table, handle)
        print(f"{split}: {table.num_rows} rows of {name} -> {args.out / f'{split}.parquet'}")


if __name__ == "__main__":
    main()
