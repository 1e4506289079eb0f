"""Published reference accuracies (`baselines/published/`): load, validate, and find by benchmark.

The folder holds `sources.json` (papers' tables and pages, by key) and one `<benchmark>.json` per
benchmark; `baselines/published/README.md` describes the fields. Every row names its source, quotes
the table row it was read from, says how the number was measured (`protocol`), by whom
(`reported_by`) and how this project checked it (`check`). The loader checks each accuracy against
its quote: by column where the source is a table with known headers (the cell under the header the
benchmark maps the split to must hold that number), else as a whole number in the quote (figures
and prose). Accuracies are in percent, as the papers print them. Papers publish overall and
per-category accuracies only: no per-scale-bin numbers.

    from grounding_gym.eval.published import find_published
    for bench in find_published("vstar"):
        print(bench.title, [(r.system, r.accuracy["overall"]) for r in bench.rows])
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, overload

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
    "quote_cells",
]

OVERALL = "overall"
"""The accuracy key of a row's overall number; every other key is a category of the benchmark."""

SOURCES_FILE = "sources.json"
_SOURCE_FIELDS = {
    "title": True,
    "url": True,
    "table": True,
    "arxiv": False,
    "read": False,
    "secondary": False,
    "columns": False,
    "markers": False,
}
_BENCHMARK_FIELDS = {
    "benchmark": True,
    "title": True,
    "datasets": True,
    "split": False,
    "categories": True,
    "category_labels": True,
    "category_aliases": False,
    "columns": False,
    "note": False,
    "rows": True,
}
_ROW_FIELDS = {
    "system": True,
    "base_model": True,
    "size": True,
    "source": True,
    "accuracy": True,
    "quote": True,
    "protocol": True,
    "reported_by": True,
    "check": True,
    "marker": False,
    "note": False,
}
_NUMBER = re.compile(r"(?<![\d.])\d+(?:\.\d+)?(?![\d.])")
_MARKUP = re.compile(r"\*\*|</?b>|</?strong>")


class PublishedFormatError(ValueError):
    """A published-results file that cannot be read; the message names the file and the row."""


@dataclass(frozen=True)
class PublishedSource:
    """Where numbers were read: one table (or figure, or page) of a paper or of its authors' pages.

    Attributes:
        key: the key rows cite.
        title: the paper's title.
        url: the paper's page (arXiv) where the numbers are in the paper, else the page read.
        table: which table or figure, with its column headers.
        arxiv: the arXiv id, or None.
        read: where the quotes were actually read, when not at `url` (a README, a project page).
        secondary: True when the source re-prints or aggregates other papers' numbers.
        columns: the table's headers, in order (the first is the system column; None for a header
            not read); quotes of a source with columns are checked cell by cell. Empty for figures
            and prose, whose quotes are checked number by number.
        markers: marker printed beside a system -> its meaning, as the source explains it.
    """

    key: str
    title: str
    url: str
    table: str
    arxiv: str | None = None
    read: str | None = None
    secondary: bool = False
    columns: tuple[str | None, ...] = ()
    markers: Mapping[str, str] = field(default_factory=dict)

    def cite(self) -> str:
        arxiv = f" (arXiv {self.arxiv})" if self.arxiv else ""
        read = f"; read at {self.read}" if self.read else ""
        kind = " [secondary source]" if self.secondary else ""
        return f"{self.title}{arxiv}, {self.table}: {self.url}{read}{kind}"


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
        protocol: how the number was measured, as the source says ("Avg@32", "Avg@1", "human",
            "not stated").
        reported_by: "authors" (the system's own paper or page), or who re-evaluated or
            re-printed it.
        check: how this project checked the number against the source, honestly.
        marker: the marker the source prints beside the system ("†"), or "".
        note: anything a reader must know (where the size came from, an ambiguous column).
    """

    system: str
    base_model: str | None
    size: str | None
    source: PublishedSource
    accuracy: Mapping[str, float]
    quote: str
    protocol: str
    reported_by: str
    check: str
    marker: str = ""
    note: str = ""

    @property
    def marker_meaning(self) -> str:
        """The source's explanation of this row's marker ("" without one)."""
        return self.source.markers.get(self.marker, "") if self.marker else ""


@dataclass(frozen=True)
class PublishedBenchmark:
    """The published rows of one benchmark (one `<benchmark>.json`).

    Attributes:
        name: the key (`--published NAME`), e.g. "vstar", "hrbench-4k".
        title: the benchmark's printed name.
        datasets: grounding-gym dataset names whose runs this benchmark matches.
        split: the dataset split a run must have recorded (`meta["dataset_split"]`, e.g. "4k"
            for HR-Bench 4K), or None when the dataset has one version.
        categories: category names, as this project's loader names them (`Sample.category`).
        category_labels: category -> the source's column header, for display.
        category_aliases: category -> other names a run's category may have ("single").
        rows: the published rows (may be empty: `note` says why).
        path: the file read.
        note: what a reader must know about the benchmark's published numbers.
    """

    name: str
    title: str
    datasets: tuple[str, ...]
    categories: tuple[str, ...]
    category_labels: Mapping[str, str]
    rows: tuple[PublishedRow, ...]
    path: Path
    split: str | None = None
    category_aliases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    note: str = ""

    def run_mismatch(self, meta: Mapping[str, Any]) -> str | None:
        """Why a run (its summary's `meta`) is not comparable with these numbers, or None.

        The run's dataset must be one of `datasets` and, when the benchmark has a `split`, the run
        must have recorded that split (HR-Bench 4K vs 8K)."""
        dataset = meta.get("dataset")
        if dataset not in self.datasets:
            return f"not comparable ({dataset or 'dataset not recorded'})"
        if self.split is not None:
            split = meta.get("dataset_split")
            if split is None:
                return (
                    f"not comparable ({dataset}, split not recorded: name the file "
                    f'*_{self.split}.tsv or pass --dataset-kwargs \'{{"split": "{self.split}"}}\')'
                )
            if str(split).casefold() != self.split.casefold():
                return f"not comparable ({dataset} {split})"
        return None


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


@overload
def _text(
    file: Path, where: str, value: Any, field: str, optional: Literal[False] = False
) -> str: ...


@overload
def _text(file: Path, where: str, value: Any, field: str, optional: bool) -> str | None: ...


def _text(file: Path, where: str, value: Any, field: str, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value.strip():
        kind = "a non-empty string" + (" or null" if optional else "")
        raise _fail(file, where, f"{field!r} must be {kind}, got {value!r}")
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
        columns = value.get("columns") or []
        if not isinstance(columns, list) or not all(
            c is None or (isinstance(c, str) and c.strip()) for c in columns
        ):
            raise _fail(
                file, where, f"'columns' must be a list of headers or nulls, got {columns!r}"
            )
        markers = value.get("markers") or {}
        if not isinstance(markers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in markers.items()
        ):
            raise _fail(file, where, f"'markers' must map a marker to its meaning, got {markers!r}")
        secondary = value.get("secondary", False)
        if not isinstance(secondary, bool):
            raise _fail(file, where, f"'secondary' must be true or false, got {secondary!r}")
        sources[key] = PublishedSource(
            key=key,
            title=_text(file, where, value["title"], "title"),
            url=_text(file, where, value["url"], "url"),
            table=_text(file, where, value["table"], "table"),
            arxiv=_text(file, where, value.get("arxiv"), "arxiv", True),
            read=_text(file, where, value.get("read"), "read", True),
            secondary=secondary,
            columns=tuple(columns),
            markers=dict(markers),
        )
    return sources


def _clean(cell: str) -> str:
    """A cell's text without bold markup (`**`, `<b>`)."""
    return _MARKUP.sub("", cell).strip()


def quote_cells(quote: str) -> list[str]:
    """The cells of a table-row quote ("| a | b |" or "a | b |"), markup removed.

    >>> quote_cells("| GPT-4o | **62.0** | <b>58.3</b> |")
    ['GPT-4o', '62.0', '58.3']
    """
    cells = quote.strip()
    cells = cells[1:] if cells.startswith("|") else cells
    cells = cells[:-1] if cells.endswith("|") else cells
    return [_clean(c) for c in cells.split("|")]


def _same_number(text: str, number: float) -> bool:
    try:
        return float(text) == float(number)
    except ValueError:
        return False


def _check_quote(
    file: Path,
    where: str,
    split: str,
    number: float,
    quote: str,
    source: PublishedSource,
    columns: Mapping[str, str],
) -> None:
    """The number must be in its quote: in its column's cell for a table source, else as a whole
    number of the quote (figures and prose)."""
    if not source.columns:
        if not any(_same_number(t, number) for t in _NUMBER.findall(_clean(quote))):
            raise _fail(
                file,
                where,
                f"accuracy[{split!r}] = {number:g} does not appear as a number in its quote "
                f"{quote!r}",
            )
        return
    header = columns.get(split)
    if header is None or header not in source.columns:
        raise _fail(
            file,
            where,
            f"no column of source {source.key!r} is mapped to split {split!r}: add it to the "
            f"benchmark's 'columns' ({{{source.key!r}: {{{split!r}: HEADER}}}}); headers: "
            f"{[c for c in source.columns if c]}",
        )
    cells = quote_cells(quote)
    if len(cells) != len(source.columns):
        raise _fail(
            file,
            where,
            f"the quote has {len(cells)} cells but source {source.key!r} has "
            f"{len(source.columns)} columns: {quote!r}",
        )
    cell = cells[source.columns.index(header)]
    if not _same_number(cell, number):
        raise _fail(
            file,
            where,
            f"accuracy[{split!r}] = {number:g} is not the quote's {header!r} cell {cell!r}",
        )


def _accuracy(
    file: Path,
    where: str,
    value: Any,
    splits: Sequence[str],
    quote: str,
    source: PublishedSource,
    columns: Mapping[str, str],
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
        _check_quote(file, where, split, number, quote, source, columns)
        accuracy[split] = float(number)
    return accuracy


def _row(
    file: Path,
    index: int,
    value: Any,
    splits: Sequence[str],
    sources: Mapping[str, PublishedSource],
    columns: Mapping[str, Mapping[str, str]],
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
    cited = sources[source]
    marker = _text(file, where, value.get("marker"), "marker", optional=True) or ""
    if marker and marker not in cited.markers:
        raise _fail(
            file,
            where,
            f"marker {marker!r} is not explained by source {source!r} (its markers: "
            f"{sorted(cited.markers)}); add its meaning to {SOURCES_FILE}",
        )
    if marker and marker not in quote:
        raise _fail(file, where, f"marker {marker!r} is not in the quote {quote!r}")
    system_cell = quote_cells(quote)[0] if cited.columns else ""
    unlabelled = [m for m in cited.markers if m in system_cell and m != marker]
    if unlabelled:
        raise _fail(
            file,
            where,
            f"the quote marks the system with {unlabelled[0]!r} "
            f"({cited.markers[unlabelled[0]]!r}): "
            f'add "marker": {unlabelled[0]!r} to the row',
        )
    return PublishedRow(
        system=_text(file, where, system, "system"),
        base_model=_text(file, where, value["base_model"], "base_model", optional=True),
        size=_text(file, where, value["size"], "size", optional=True),
        source=cited,
        accuracy=_accuracy(
            file, where, value["accuracy"], splits, quote, cited, columns.get(source, {})
        ),
        quote=quote,
        protocol=_text(file, where, value["protocol"], "protocol"),
        reported_by=_text(file, where, value["reported_by"], "reported_by"),
        check=_text(file, where, value["check"], "check"),
        marker=marker,
        note=_text(file, where, value.get("note"), "note", optional=True) or "",
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
    _check_fields(file, "top level", data, _BENCHMARK_FIELDS)
    categories = _string_list(file, "categories", data["categories"])
    labels = data["category_labels"]
    if not isinstance(labels, dict) or not set(labels) <= set(categories):
        raise _fail(
            file,
            "category_labels",
            f"must map some of the categories {list(categories)} to headers, got {labels!r}",
        )
    aliases = data.get("category_aliases") or {}
    if not isinstance(aliases, dict) or not set(aliases) <= set(categories):
        raise _fail(
            file,
            "category_aliases",
            f"must map some of the categories {list(categories)} to lists of names, got "
            f"{aliases!r}",
        )
    columns = data.get("columns") or {}
    if not isinstance(columns, dict) or not all(
        isinstance(v, dict) and all(isinstance(h, str) for h in v.values())
        for v in columns.values()
    ):
        raise _fail(file, "columns", f"must map source -> {{split: header}}, got {columns!r}")
    unknown = sorted(set(columns) - set(sources))
    if unknown:
        raise _fail(file, "columns", f"unknown source(s) {unknown}; known: {sorted(sources)}")
    note = _text(file, "note", data.get("note"), "note", optional=True) or ""
    rows = data["rows"]
    if not isinstance(rows, list) or not (rows or note):
        raise _fail(file, "rows", "must be a non-empty list (or empty, with a 'note' saying why)")
    splits = (OVERALL, *categories)
    return PublishedBenchmark(
        name=_text(file, "benchmark", data["benchmark"], "benchmark"),
        title=_text(file, "title", data["title"], "title"),
        datasets=_string_list(file, "datasets", data["datasets"]),
        categories=categories,
        category_labels=dict(labels),
        rows=tuple(_row(file, i, row, splits, sources, columns) for i, row in enumerate(rows)),
        path=file,
        split=_text(file, "split", data.get("split"), "split", optional=True),
        category_aliases={
            k: _string_list(file, f"category_aliases[{k!r}]", v) for k, v in aliases.items()
        },
        note=note,
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


def _fold(name: str) -> str:
    return re.sub(r"[\s_-]+", " ", name).strip().casefold()


def match_category(
    run_category: str,
    categories: Sequence[str],
    aliases: Mapping[str, Sequence[str]] | None = None,
) -> str | None:
    """The published category a run's category corresponds to: the same name or one of its
    `aliases`, ignoring case, spaces, `_` and `-`, or the last `/`-separated part of it (a
    loader's "Perception/Attributes" is "Attributes").

    >>> match_category("single", ["FSP", "FCP"], {"FSP": ["single"], "FCP": ["cross"]})
    'FSP'
    """
    aliases = aliases or {}
    for candidate in (run_category, run_category.rsplit("/", 1)[-1]):
        for category in categories:
            names = (category, *aliases.get(category, ()))
            if any(_fold(candidate) == _fold(name) for name in names):
                return category
    return None
