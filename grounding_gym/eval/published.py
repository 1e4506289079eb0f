"""Published reference accuracies (`baselines/published/`): load, validate, and find by benchmark.

The folder holds `sources.json` (papers and pages, by key) and one `<benchmark>.json` per benchmark;
`baselines/published/README.md` describes the fields. Every row names its source and quotes the
table row it was read from; the loader checks that each accuracy appears, as printed, in its quote.
Accuracies are in percent, as the papers print them. Papers publish overall and per-category
accuracies only: no per-scale-bin numbers.

    from grounding_gym.eval.published import find_published
    for bench in find_published("vstar"):
        print(bench.title, [(r.system, r.accuracy["overall"]) for r in bench.rows])
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grounding_gym.validation import did_you_mean

__all__ = [
    "OVERALL",
    "PublishedBenchmark",
    "PublishedFormatError",
    "PublishedRow",
    "PublishedSource",
    "find_published",
    "list_published",
    "load_published",
    "load_sources",
    "match_category",
]

OVERALL = "overall"
"""The accuracy key of a row's overall number; every other key is a category of the benchmark."""

SOURCES_FILE = "sources.json"
_SOURCE_FIELDS = {"title": True, "url": True, "table": True, "arxiv": False}
_BENCHMARK_FIELDS = {"benchmark", "title", "datasets", "categories", "category_labels", "rows"}
_ROW_FIELDS = {
    "system": True,
    "base_model": True,
    "size": True,
    "source": True,
    "accuracy": True,
    "quote": True,
    "note": False,
}


class PublishedFormatError(ValueError):
    """A published-results file that cannot be read; the message names the file and the row."""


@dataclass(frozen=True)
class PublishedSource:
    """Where numbers were read: a paper (or its authors' page / repository) and its table."""

    key: str
    title: str
    url: str
    table: str
    arxiv: str | None = None

    def cite(self) -> str:
        arxiv = f" (arXiv {self.arxiv})" if self.arxiv else ""
        return f"{self.title}{arxiv}, {self.table}: {self.url}"


@dataclass(frozen=True)
class PublishedRow:
    """One system's published accuracies on one benchmark, as one source prints them.

    Attributes:
        system: the system as the source names it.
        base_model: the model it starts from, or None when the source does not say.
        size: parameter count as printed ("7B"), or None when not printed.
        source: where the numbers were read.
        accuracy: percent, by split: `OVERALL` and/or the benchmark's category names.
        quote: the row text read in the source (whitespace collapsed).
        note: anything a reader must know (where the size came from, an ambiguous column).
    """

    system: str
    base_model: str | None
    size: str | None
    source: PublishedSource
    accuracy: Mapping[str, float]
    quote: str
    note: str = ""


@dataclass(frozen=True)
class PublishedBenchmark:
    """The published rows of one benchmark (one `<benchmark>.json`).

    Attributes:
        name: the key (`--published NAME`), e.g. "vstar", "hrbench-4k".
        title: the benchmark's printed name.
        datasets: grounding-gym dataset names whose runs this benchmark matches.
        categories: category names, as this project's loader names them (`Sample.category`).
        category_labels: category -> the source's column header, for display.
        rows: the published rows.
        path: the file read.
    """

    name: str
    title: str
    datasets: tuple[str, ...]
    categories: tuple[str, ...]
    category_labels: Mapping[str, str]
    rows: tuple[PublishedRow, ...]
    path: Path


def default_published_dir() -> Path:
    """`baselines/published/` at the repository root (beside the `grounding_gym` package)."""
    return Path(__file__).resolve().parents[2] / "baselines" / "published"


def _fail(file: Path, where: str, message: str) -> PublishedFormatError:
    return PublishedFormatError(f"{file}: {where}: {message}")


def _read_json(file: Path) -> Any:
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise PublishedFormatError(f"{file}: not valid JSON ({exc})") from exc


def _did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """`" (did you mean 'x'?)"` for the closest of `candidates`, or ""."""
    return did_you_mean(name, candidates, " (did you mean {!r}?)")


def _check_fields(file: Path, where: str, value: Any, fields: Mapping[str, bool]) -> None:
    """`value` must be an object with every required field and no unknown one."""
    if not isinstance(value, dict):
        raise _fail(file, where, f"must be a JSON object, got {type(value).__name__}")
    missing = [k for k, required in fields.items() if required and k not in value]
    if missing:
        raise _fail(file, where, f"missing field(s) {missing}")
    unknown = sorted(set(value) - set(fields))
    if unknown:
        said = ", ".join(f"{k!r}{_did_you_mean(k, fields)}" for k in unknown)
        raise _fail(file, where, f"unknown field(s) {said}; allowed: {sorted(fields)}")


def _text(file: Path, where: str, value: Any, field: str) -> str:
    """`value` stripped; a non-empty string is required."""
    if not isinstance(value, str) or not value.strip():
        raise _fail(file, where, f"{field!r} must be a non-empty string, got {value!r}")
    return value.strip()


def _optional_text(file: Path, where: str, value: Any, field: str) -> str | None:
    """`value` stripped, or None for null."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise _fail(file, where, f"{field!r} must be a non-empty string or null, got {value!r}")
    return value.strip()


def load_sources(path: str | Path) -> dict[str, PublishedSource]:
    """The sources of a published folder (`sources.json`, or that file itself), by key.

    Raises:
        FileNotFoundError: no such file.
        PublishedFormatError: not an object of `{key: {title, url, table, arxiv?}}`.
    """
    file = Path(path)
    file = file / SOURCES_FILE if file.is_dir() else file
    if not file.is_file():
        raise FileNotFoundError(f"no published sources at {file}")
    data = _read_json(file)
    if not isinstance(data, dict) or not data:
        raise PublishedFormatError(f"{file}: must be a non-empty JSON object of sources by key")
    sources = {}
    for key, value in data.items():
        where = f"source {key!r}"
        _check_fields(file, where, value, _SOURCE_FIELDS)
        sources[key] = PublishedSource(
            key=key,
            title=_text(file, where, value["title"], "title"),
            url=_text(file, where, value["url"], "url"),
            table=_text(file, where, value["table"], "table"),
            arxiv=_optional_text(file, where, value.get("arxiv"), "arxiv"),
        )
    return sources


def _accuracy(
    file: Path, where: str, value: Any, splits: Sequence[str], quote: str
) -> dict[str, float]:
    if not isinstance(value, dict) or not value:
        raise _fail(
            file, where, f"'accuracy' must be a non-empty object {{split: percent}}, got {value!r}"
        )
    accuracy = {}
    for split, number in value.items():
        if split not in splits:
            raise _fail(
                file,
                where,
                f"unknown split {split!r}{_did_you_mean(split, splits)}; splits: {list(splits)}",
            )
        if (
            isinstance(number, bool)
            or not isinstance(number, (int, float))
            or not 0.0 <= number <= 100.0
        ):
            raise _fail(
                file, where, f"accuracy[{split!r}] must be a percentage in [0, 100], got {number!r}"
            )
        if f"{number:g}" not in quote:
            raise _fail(
                file,
                where,
                f"accuracy[{split!r}] = {number:g} does not appear in its quote {quote!r}",
            )
        accuracy[split] = float(number)
    return accuracy


def _row(
    file: Path,
    index: int,
    value: Any,
    splits: Sequence[str],
    sources: Mapping[str, PublishedSource],
) -> PublishedRow:
    system = value.get("system") if isinstance(value, dict) else None
    where = f"row {index}" + (f" ({system!r})" if isinstance(system, str) else "")
    _check_fields(file, where, value, _ROW_FIELDS)
    source = value["source"]
    if source not in sources:
        raise _fail(
            file,
            where,
            f"source {source!r} is not in {SOURCES_FILE}{_did_you_mean(str(source), sources)}; "
            f"known: {sorted(sources)}",
        )
    quote = " ".join(_text(file, where, value["quote"], "quote").split())
    return PublishedRow(
        system=_text(file, where, system, "system"),
        base_model=_optional_text(file, where, value["base_model"], "base_model"),
        size=_optional_text(file, where, value["size"], "size"),
        source=sources[source],
        accuracy=_accuracy(file, where, value["accuracy"], splits, quote),
        quote=quote,
        note=_optional_text(file, where, value.get("note"), "note") or "",
    )


def _string_list(file: Path, field: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise _fail(file, field, f"must be a list of non-empty strings, got {value!r}")
    return tuple(value)


def load_published(
    path: str | Path, sources: Mapping[str, PublishedSource] | None = None
) -> PublishedBenchmark:
    """Read and validate one `<benchmark>.json`.

    Args:
        path: the file.
        sources: sources by key (default: `sources.json` beside the file).

    Raises:
        FileNotFoundError: no such file (or no `sources.json` beside it).
        PublishedFormatError: a malformed file; the message names the file, the row and the field.
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"no published results at {file}")
    if sources is None:
        sources = load_sources(file.parent)
    data = _read_json(file)
    _check_fields(file, "top level", data, dict.fromkeys(_BENCHMARK_FIELDS, True))
    categories = _string_list(file, "categories", data["categories"])
    labels = data["category_labels"]
    if not isinstance(labels, dict) or not set(labels) <= set(categories):
        raise _fail(
            file,
            "category_labels",
            f"must map some of the categories {list(categories)} to headers, got {labels!r}",
        )
    rows = data["rows"]
    if not isinstance(rows, list) or not rows:
        raise _fail(file, "rows", "must be a non-empty list")
    splits = (OVERALL, *categories)
    return PublishedBenchmark(
        name=_text(file, "benchmark", data["benchmark"], "benchmark"),
        title=_text(file, "title", data["title"], "title"),
        datasets=_string_list(file, "datasets", data["datasets"]),
        categories=categories,
        category_labels=dict(labels),
        rows=tuple(_row(file, i, row, splits, sources) for i, row in enumerate(rows)),
        path=file,
    )


def list_published(root: str | Path | None = None) -> list[PublishedBenchmark]:
    """Every benchmark file of the folder `root` (default `default_published_dir()`), by name."""
    folder = Path(root) if root is not None else default_published_dir()
    sources = load_sources(folder)
    files = sorted(p for p in folder.glob("*.json") if p.name != SOURCES_FILE)
    return [load_published(p, sources) for p in files]


def find_published(name: str, root: str | Path | None = None) -> list[PublishedBenchmark]:
    """The published benchmarks for a run's benchmark or dataset name: the file named `name`, else
    every file that lists `name` among its `datasets` (a `hrbench` run matches HR-Bench 4K and 8K).

    Raises:
        FileNotFoundError: none match (the message lists what is published).
    """
    every = list_published(root)
    exact = [b for b in every if b.name == name]
    found = exact or [b for b in every if name in b.datasets]
    if not found:
        known = sorted({b.name for b in every} | {d for b in every for d in b.datasets})
        raise FileNotFoundError(
            f"no published results for {name!r}{_did_you_mean(name, known)}; published: {known}"
        )
    return found


def match_category(run_category: str, categories: Sequence[str]) -> str | None:
    """The published category a run's category corresponds to: the same name, ignoring case, or
    the last `/`-separated part of it (a loader's "Perception/Attributes" is "Attributes")."""
    for candidate in (run_category, run_category.rsplit("/", 1)[-1]):
        for category in categories:
            if candidate.strip().casefold() == category.casefold():
                return category
    return None
