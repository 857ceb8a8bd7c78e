"""Dataset loading: Hub names, local json/jsonl/parquet/csv files, and `builtin:NAME` datasets generated in code."""

from __future__ import annotations

import json
from pathlib import Path

from datasets import DatasetDict

BUILTIN_PREFIX = "builtin:"
_FILE_BUILDERS = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv"}


class DatasetLoadError(ValueError):
    pass


def load_dataset(
    name: str, config: str | None = None, form: str | None = None, streaming: bool = False
) -> DatasetDict:
    """Load `name` the way `trl sft --dataset_name` does, plus local files and `builtin:NAME`.

    For a built-in dataset, `config` (or else `form`) picks its shape, e.g. "sft" or "grpo"; `form` is the default
    the method asks for, used when the dataset offers it.
    """
    if name.startswith(BUILTIN_PREFIX):
        return load_builtin(name[len(BUILTIN_PREFIX) :], config or form)
    path = Path(name)
    if path.suffix.lower() in _FILE_BUILDERS:
        if not path.exists():
            raise DatasetLoadError(f"Dataset file not found: {name}")
        if _FILE_BUILDERS[path.suffix.lower()] == "json":
            check_json_file(path)
        import datasets

        try:
            return datasets.load_dataset(
                _FILE_BUILDERS[path.suffix.lower()], data_files=str(path), streaming=streaming
            )
        except (datasets.exceptions.DatasetGenerationError, ValueError) as exc:
            cause = exc.__cause__ or exc
            raise DatasetLoadError(f"Could not read dataset file {name}: {cause}") from exc
    if path.is_dir():
        import datasets

        try:
            saved = datasets.load_from_disk(str(path))
        except FileNotFoundError:
            return datasets.load_dataset(str(path), name=config, streaming=streaming)
        # A bare Dataset saved with `save_to_disk` is the train split, as a data file would be.
        return saved if isinstance(saved, datasets.DatasetDict) else datasets.DatasetDict({"train": saved})
    import datasets

    try:
        return datasets.load_dataset(name, name=config, streaming=streaming)
    except ConnectionError as exc:  # offline, or the Hub unreachable: not a local file or folder either
        raise DatasetLoadError(
            f"Dataset {name!r} is not a local file or folder, and the Hub could not be reached ({exc}). Download it "
            f"while online (`hf download --repo-type dataset {name}`) or give a local path."
        ) from None


def check_json_file(path: Path) -> None:
    """Refuse a .json/.jsonl file datasets would fail on, naming the file and line: JSON that does not parse, a line
        that is not an object, a field whose type changes from one line to another (datasets stops at it with a row number
    counted from its current block, or reads it as raw JSON), or no rows at all. A .json file that
        parses as a whole (a list of rows, or datasets' nested form) is left to datasets."""
    if path.suffix.lower() == ".json":
        try:
            json.loads(path.read_text(encoding="utf-8"))
            return
        except json.JSONDecodeError:
            pass  # JSON Lines under a .json name: check it line by line
    with path.open(encoding="utf-8") as lines:
        _check_json_lines(path, lines)


def _check_json_lines(path: Path, lines) -> None:
    seen: dict[str, tuple[str, int]] = {}  # field -> (JSON type, first line it appeared with it)
    rows = 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetLoadError(f"{path}:{number}: not valid JSON ({exc.msg} at column {exc.colno}).") from None
        if not isinstance(row, dict):
            raise DatasetLoadError(f"{path}:{number}: expected a JSON object per line, got {type(row).__name__}.")
        rows += 1
        for key, value in row.items():
            kind = _json_type(value)
            if kind == "null":
                continue
            first = seen.setdefault(key, (kind, number))
            if first[0] != kind:
                raise DatasetLoadError(
                    f"{path}:{number}: field {key!r} is {kind}, but {first[0]} on line {first[1]}; every row must "
                    "give a field the same type."
                )
    if rows == 0:
        raise DatasetLoadError(f"Dataset file {path} has no rows.")


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return "null"


def load_builtin(name: str, form: str | None = None) -> DatasetDict:
    from trl_ext.plugin.registry import get

    record = get("dataset", name)
    if form is not None and form not in record.forms:
        if form in ("sft", "grpo", "dpo"):  # a method's preferred form the dataset lacks: use its own default
            form = None
        else:
            raise DatasetLoadError(
                f"builtin:{name} has no form {form!r}; available: {', '.join(record.forms)} (use --dataset_config)"
            )
    return record.build(form=form or record.forms[0])
