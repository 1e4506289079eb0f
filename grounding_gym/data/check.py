"""`grounding-gym check-dataset`: find every bad row of a dataset before an evaluation does.

Builds the dataset as an env would (`make_dataset(name, **kwargs)`), collecting each row the
loader rejects (loaders that take `bad_rows`, e.g. `jsonl`, report them all; others stop at the
first), then opens every sample's image header (size, format) and, with `decode=True`, decodes
every pixel (a truncated JPEG has a valid header and fails only here). Each problem is one
`Problem`: the row's location (file and line when the loader records them), the sample id and
the reason.

    grounding-gym check-dataset --dataset jsonl --data-dir my_benchmark --decode
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from grounding_gym.data.formats.records import DatasetFormatError
from grounding_gym.data.registry import dataset_loader, make_dataset
from grounding_gym.data.sample import Sample
from grounding_gym.views import ImageHandle, ImageLoadError, describe_source

__all__ = ["Problem", "check_dataset", "main"]


@dataclass(frozen=True)
class Problem:
    """One bad row: `where` (file and line, or the sample's index), `sample_id` (None when the
    row never became a sample) and `reason`."""

    where: str
    sample_id: str | None
    reason: str

    def __str__(self) -> str:
        sample = f" (sample {self.sample_id!r})" if self.sample_id is not None else ""
        return f"{self.where}{sample}: {self.reason}"


def check_dataset(
    name: str, dataset_kwargs: Mapping[str, Any] | None = None, decode: bool = False
) -> tuple[int, list[Problem]]:
    """`(number of samples loaded, problems)` of the dataset registered as `name`.

    Args:
        name: a registered dataset name (`grounding-gym list datasets`).
        dataset_kwargs: the loader's arguments (`data_dir`, `path`, ...).
        decode: also decode every image's pixels (slow: one full decode per distinct image).

    Raises:
        ValueError: unknown name or loader arguments (with the closest valid one), or (from a
            loader that collects `bad_rows`) a missing or unreadable file.
    """
    _import_builtin_datasets()
    kwargs = dict(dataset_kwargs or {})
    bad_rows: list[DatasetFormatError] = []
    if "bad_rows" in inspect.signature(dataset_loader(name)).parameters:
        kwargs["bad_rows"] = bad_rows
    problems: list[Problem] = []
    try:
        samples = make_dataset(name, **kwargs)
    except DatasetFormatError as err:
        if "bad_rows" in kwargs:  # not a row: the file itself is missing or unreadable
            raise
        samples, bad_rows = [], [err]  # a loader without bad_rows stops at its first bad row
    problems += [_format_problem(err) for err in bad_rows]
    problems += list(_image_problems(samples, decode))
    return len(samples), problems


def _format_problem(err: DatasetFormatError) -> Problem:
    where, _, reason = str(err).partition(": ")
    return Problem(where, None, reason)


def _image_problems(samples: Sequence[Sample], decode: bool) -> Iterator[Problem]:
    """A problem for each sample whose image header (or, with `decode`, pixels) fails; each
    distinct image source is opened once."""
    seen: dict[Any, str | None] = {}
    for index, sample in enumerate(samples):
        key = sample.metadata.get("image_key") or _source_key(sample.image)
        if key not in seen:
            seen[key] = _image_error(sample.image, decode)
        error = seen[key]
        if error is not None:
            line = sample.metadata.get("line")
            where = f"line {line}" if line is not None else f"sample index {index}"
            yield Problem(f"{where}, {describe_source(sample.image)}", sample.id, error)


def _image_error(source: Any, decode: bool) -> str | None:
    try:
        handle = ImageHandle(source)
        handle.size  # noqa: B018  (reads the header)
        if decode:
            handle.image()
    except ImageLoadError as err:
        return str(err)
    return None


def _source_key(source: Any) -> Any:
    if isinstance(source, (str, os.PathLike)):
        return os.path.abspath(os.fspath(source))
    return id(source)


def _import_builtin_datasets() -> None:
    import grounding_gym.data.loaders  # noqa: F401  (registers the benchmark formats)
    import grounding_gym.data.synthetic  # noqa: F401


def main(argv: Sequence[str] | None = None) -> int:
    """`grounding-gym check-dataset`: exit 0 when every row is good, 1 when any is bad."""
    parser = argparse.ArgumentParser(
        prog="grounding-gym check-dataset",
        description="Open every row and image header of a dataset (every pixel with --decode) "
        "and list every bad row with its file, line and reason; exit code 1 if any.",
    )
    parser.add_argument("--dataset", default="jsonl", help="registered dataset (default jsonl)")
    parser.add_argument("--data-dir", default=None, help="the dataset's folder")
    parser.add_argument("--path", default=None, help="the dataset's file (jsonl and others)")
    parser.add_argument(
        "--dataset-kwargs", default="{}", metavar="JSON", help="other loader arguments"
    )
    parser.add_argument("--decode", action="store_true", help="also decode every image")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    kwargs = json.loads(args.dataset_kwargs)
    if not isinstance(kwargs, dict):
        parser.error(f"--dataset-kwargs must be a JSON object, got {args.dataset_kwargs!r}")
    kwargs.update({k: v for k, v in (("data_dir", args.data_dir), ("path", args.path)) if v})
    n, problems = check_dataset(args.dataset, kwargs, decode=args.decode)
    for problem in problems:
        print(problem)
    checked = "rows, image headers and pixels" if args.decode else "rows and image headers"
    print(f"{args.dataset}: {n} samples loaded, {len(problems)} bad ({checked} checked)")
    return 1 if problems else 0
