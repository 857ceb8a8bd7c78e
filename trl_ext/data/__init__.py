"""Dataset loading: Hub names, local json/jsonl/parquet/csv files, and `builtin:NAME` datasets generated in code."""

from __future__ import annotations

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
        import datasets

        return datasets.load_dataset(_FILE_BUILDERS[path.suffix.lower()], data_files=str(path), streaming=streaming)
    if path.is_dir():
        import datasets

        try:
            return datasets.load_from_disk(str(path))
        except FileNotFoundError:
            return datasets.load_dataset(str(path), name=config, streaming=streaming)
    import datasets

    return datasets.load_dataset(name, name=config, streaming=streaming)


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
