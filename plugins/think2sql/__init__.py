"""Think2SQL (arXiv:2504.15077): GRPO for text-to-SQL with rewards computed by executing the SQL.

Adds the execution rewards `think2sql_qatch` (QATCH partial credit, the official script's reward) and `think2sql_ex`
(execution accuracy), the format rewards `think2sql_format` and `think2sql_tag_count`, and `builtin:text2sql` (60
questions with gold SQL over a generated SQLite database) and the transform `text2sql_prompt` (BIRD/Spider rows ->
prompts with the schema, bounded to a token budget). Training is TRL's GRPOTrainer (`trl-ext train grpo
--rewards think2sql_qatch,think2sql_format --reward_weights 0.95 0.05`). See README.md.
"""

from trl_ext import Dataset, Reward, Transform, hookimpl
from trl_ext.plugin.lazy import lazy_exports

from .paper import PAPER

# These import the sandbox or `datasets`: named by path here, imported on first use.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "ExecutionAccuracyReward": ".rewards",
        "QatchReward": ".rewards",
        "SafeSQLiteExecutor": ".executor",
        "Think2SQLConfig": ".config",
        "build_text2sql": ".data:build",
        "ensure_database": ".database",
        "execution_accuracy": ".scoring",
        "extract_sql": ".scoring",
        "format_ok": ".scoring",
        "qatch_score": ".scoring",
        "text2sql_prompt": ".prompts",
        "think2sql_format": ".rewards",
        "think2sql_tag_count": ".rewards",
    },
)

__all__ = [
    "PAPER",
    "ExecutionAccuracyReward",
    "QatchReward",
    "SafeSQLiteExecutor",
    "Think2SQLConfig",
    "build_text2sql",
    "ensure_database",
    "execution_accuracy",
    "extract_sql",
    "format_ok",
    "qatch_score",
    "text2sql_prompt",
    "think2sql_format",
    "think2sql_tag_count",
]

_EXECUTION_OPTIONS = {
    "small_update": "The later code's variant: 1 if the score is 1, else max(score, 0.1) when the format is right, "
    "else 0 (default false).",
    "db_root": "Folder with {db_id}/{db_id}.sqlite (BIRD/Spider layout); default: builtin:text2sql's database.",
    "max_rows": "Rows read per query; more is an error (default 10000).",
    "default_timeout_s": "t_gold for rows without `sql_execution_time` (default 5).",
    "max_timeout_s": "Cap of the per-query limit min(1.2·t_gold + 10, cap) in seconds (default 500).",
    "num_workers": "Sandboxes run side by side per batch (default 2).",
    "answer_tag": "Tag of the answer span holding the SQL (default answer).",
    "think_tag": "Tag of the reasoning span, for small_update's format check (default think).",
}
_TAG_OPTIONS = {
    "think_tag": "Tag of the reasoning span (default think).",
    "answer_tag": "Tag of the answer span (default answer).",
}
_EXECUTION = (
    "Runs the predicted SQL (last ```sql block in <answer>, else the answer, else the completion) and the gold "
    "`target_sql` read-only in the sandbox on {db_root}/{db_id}/{db_id}.sqlite (optional column "
    "`sql_execution_time`); error/timeout -> 0. Logs sql/exec_error_rate, sql/timeout_rate, sql/ex."
)


@hookimpl
def register_rewards(register):
    common = {"family": "grpo-reward", "paper": PAPER}
    register(
        Reward(
            name="think2sql_qatch",
            example="trl-ext train grpo --rewards think2sql_qatch --dataset_name builtin:text2sql --max_steps 5",
            factory="trl_ext_plugins.think2sql.rewards:QatchReward.from_options",
            required_columns=("target_sql", "db_id"),
            options=_EXECUTION_OPTIONS,
            optional_columns={"sql_execution_time": "the gold query's time in seconds: sets the row's timeout"},
            description="QATCH: (cell precision + cell recall + tuple cardinality)/3 of the rows. " + _EXECUTION,
            **common,
        )
    )
    register(
        Reward(
            name="think2sql_ex",
            example="trl-ext train grpo --rewards think2sql_ex --dataset_name builtin:text2sql --max_steps 5",
            factory="trl_ext_plugins.think2sql.rewards:ExecutionAccuracyReward.from_options",
            required_columns=("target_sql", "db_id"),
            options=_EXECUTION_OPTIONS,
            optional_columns={"sql_execution_time": "the gold query's time in seconds: sets the row's timeout"},
            description="EX: 1 if the rows equal the gold rows as sets, else 0. " + _EXECUTION,
            **common,
        )
    )
    register(
        Reward(
            name="think2sql_format",
            example="trl-ext train grpo --rewards think2sql_format --dataset_name builtin:text2sql --max_steps 5",
            factory="trl_ext_plugins.think2sql.rewards:think2sql_format.from_options",
            options=_TAG_OPTIONS,
            description="1 iff the completion is <think>...</think><answer>...</answer> (case-insensitive), else 0.",
            **common,
        )
    )
    register(
        Reward(
            name="think2sql_tag_count",
            example="trl-ext train grpo --rewards think2sql_tag_count --dataset_name builtin:text2sql --max_steps 5",
            factory="trl_ext_plugins.think2sql.rewards:think2sql_tag_count.from_options",
            options=_TAG_OPTIONS,
            description='v1 tag count: +0.25 for each of "<think>\\n", "\\n</think>\\n", "\\n<answer>\\n", '
            '"\\n</answer>" occurring exactly once.',
            **common,
        )
    )


@hookimpl
def register_datasets(register):
    register(
        Dataset(
            name="text2sql",
            factory="trl_ext_plugins.think2sql.data:build",
            forms=("grpo",),
            family="builtin",
            paper=PAPER,
            description="60 template questions (counts, filters, aggregates, one join) with gold SQL over a generated "
            "3-table SQLite shop (50 rows), 40 train / 20 test; prompts hold the schema and stay under 1,200 "
            "characters. For think2sql_qatch / think2sql_ex.",
            columns={"grpo": ("prompt", "target_sql", "db_id")},
        )
    )


@hookimpl
def register_transforms(register):
    register(
        Transform(
            name="text2sql_prompt",
            factory="trl_ext_plugins.think2sql.prompts:text2sql_prompt",
            family="grpo-reward",
            paper=PAPER,
            required_columns=("question", "db_id"),
            options={
                "db_root": "Folder with {db_id}/{db_id}.sqlite (BIRD/Spider layout), read read-only; default: "
                "builtin:text2sql's database folder.",
                "max_prompt_tokens": "Token budget of a whole prompt (system + user message, chat template) "
                "(default 1024).",
                "tokenizer": "Model name or folder whose tokenizer measures prompts (e.g. smollm2-135m); default: "
                "the estimate ceil(UTF-8 bytes / chars_per_token) + 8 per message.",
                "chars_per_token": "Bytes per token of the estimate without a tokenizer (default 3.0; 1 is a sure "
                "bound for byte-level BPE).",
                "on_overflow": "drop (default: rows whose question and gold tables cannot fit are dropped and "
                "counted) or error.",
                "gold_column": "Column of the gold SQL (default: the first of SQL, query, target_sql).",
                "system_prompt": "System message (default: builtin:text2sql's answer format).",
            },
            example="trl-ext transform text2sql_prompt --dataset_name bird_train.jsonl --db_root "
            "/data/bird/train_databases --tokenizer smollm2-135m --output text2sql.jsonl",
            description="BIRD/Spider rows (question, db_id, SQL or query, optional evidence) -> prompt with the schema "
            "DDL read from {db_root}/{db_id}/{db_id}.sqlite, target_sql, db_id; prompts bounded to max_prompt_tokens "
            "by trimming the schema (tables the gold SQL and question mention kept first), never the question.",
        )
    )
