"""Think2SQL: the card's tests (shared/papers/think2sql.md, tests 1-6) with hand-computed values, the official format
regex as a second implementation of `format_ok`, adversarial SQL and completions, the built-in data and the CLI."""

import asyncio
import hashlib
import pickle
import re
import sqlite3

import pytest

import trl_ext
from trl_ext.cli import main
from trl_ext.rewards import RewardSetupError
from trl_ext.testing import tiny_grpo_flags, train_argv
from trl_ext_plugins.think2sql import (
    QatchReward,
    Think2SQLConfig,
    build_text2sql,
    execution_accuracy,
    extract_sql,
    format_ok,
    qatch_score,
)
from trl_ext_plugins.think2sql import executor as executor_module
from trl_ext_plugins.think2sql.scoring import FORMAT_PATTERN, small_update, tag_count_score


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    # builtin:text2sql writes its database under the trl-ext cache: keep it out of the home folder.
    monkeypatch.setenv("TRL_EXT_CACHE", str(tmp_path_factory.getbasetemp() / "trl-ext-cache"))


@pytest.fixture
def db_root(tmp_path):
    """The card's database: t(a INT, b TEXT) with rows (1,'x'), (2,'y'), (2,'y'), as {root}/toy/toy.sqlite."""
    path = tmp_path / "toy" / "toy.sqlite"
    path.parent.mkdir()
    connection = sqlite3.connect(path)
    with connection:
        connection.execute("CREATE TABLE t (a INT, b TEXT)")
        connection.executemany("INSERT INTO t VALUES (?, ?)", [(1, "x"), (2, "y"), (2, "y")])
    connection.close()
    return tmp_path


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def score(reward, completions, gold, db_id="toy", **extra):
    """Call an (async) reward as GRPOTrainer does; returns (rewards, {metric: last value})."""
    logged = {}
    n = len(completions)
    kwargs = {"target_sql": [gold] * n, "db_id": [db_id] * n, "log_metric": logged.__setitem__, **extra}
    result = reward(None, completions, **kwargs)
    return (asyncio.run(result) if asyncio.iscoroutine(result) else result), logged


# --- card tests 1-3: QATCH on rows ------------------------------------------------------------------------------------
def test_qatch_card_examples():
    target = [["a", "b"], ["c", "d"]]
    # 1. P = {a,b,c,e}, T = {a,b,c,d}: CP = CR = 3/4, TC = 2/2 -> (0.75 + 0.75 + 1) / 3 = 0.8333
    assert qatch_score([["a", "b"], ["c", "e"]], target) == 0.833
    # 2. same cells, 4 rows vs 2: CP = CR = 1, TC = 2/4 -> 2.5 / 3
    assert qatch_score([["a"], ["b"], ["c"], ["d"]], target) == 0.833
    # 3. empty results
    assert qatch_score([], []) == 1.0
    assert qatch_score([], target) == 0.0 and qatch_score(target, []) == 0.0


def test_ex_is_set_equality_and_nan_compares_equal():
    assert execution_accuracy([(2,), (1,), (2,)], [(1,), (2,)]) == 1.0
    assert execution_accuracy([(1,)], [(1,), (2,)]) == 0.0
    assert execution_accuracy([(float("nan"),)], [(float("nan"),)]) == 1.0
    assert qatch_score([(float("nan"), "a")], [(float("nan"), "a")]) == 1.0


# --- card test 4: through the sandbox ----------------------------------------------------------------------------------
def test_card_distinct_example_through_the_sandbox(db_root):
    completions = ["SELECT a FROM t"]
    ex, _ = score(
        trl_ext.get("reward", "think2sql_ex").build(db_root=str(db_root)), completions, "SELECT DISTINCT a FROM t"
    )
    qatch, logged = score(QatchReward(db_root=str(db_root)), completions, "SELECT DISTINCT a FROM t")
    assert ex == [1.0]  # {1, 2} == {1, 2}
    assert qatch == [round((1 + 1 + 2 / 3) / 3, 3)]  # cells {1, 2} both ways, TC = 2/3 (3 rows vs 2)
    assert logged["sql/ex"] == 1.0 and logged["sql/exec_error_rate"] == 0.0


def test_reward_reads_sql_from_the_answer(db_root):
    gold = "SELECT b FROM t WHERE a = 2"
    completions = [
        "<think>rows with a=2</think><answer>```sql\nSELECT 1\n``` then ```sql\nSELECT b FROM t WHERE a = 2\n```</answer>",
        "<answer>SELECT b FROM t WHERE a = 2</answer>",
        "  SELECT b FROM t  ",
        "<think>no answer tag</think> SELECT b FROM t WHERE a = 2",  # the whole text is the SQL: a syntax error
    ]
    rewards, logged = score(QatchReward(db_root=str(db_root)), completions, gold)
    # third: rows x,y,y vs y,y -> CP = 1/2, CR = 1, TC = 2/3
    assert rewards == [1.0, 1.0, round((0.5 + 1 + 2 / 3) / 3, 3), 0.0]
    assert logged["sql/exec_error_rate"] == 0.25


# --- card test 5: the sandbox holds ------------------------------------------------------------------------------------
ATTACKS = [
    "DELETE FROM t",
    "DROP TABLE t",
    "ATTACH 'x' AS y",
    "SELECT 1; SELECT 2",
    "SELECT 1; DELETE FROM t",
    "INSERT INTO t VALUES (3, 'z')",
    "UPDATE t SET b = 'q'",
    "CREATE TABLE u (c)",
    "PRAGMA writable_schema = 1",
    "SELECT load_extension('libevil')",
    "VACUUM INTO 'copy.sqlite'",
    "-- only a comment",
    "",
]


def test_writes_ddl_attach_extensions_and_multiple_statements_score_zero(db_root):
    database = db_root / "toy" / "toy.sqlite"
    before = digest(database)
    completions = [f"<think>t</think><answer>{sql}</answer>" for sql in ATTACKS]
    reward = trl_ext.get("reward", "think2sql_qatch").build(db_root=str(db_root), small_update=True)
    rewards, logged = score(reward, completions, "SELECT a FROM t")
    assert rewards == [0.0] * len(ATTACKS)  # small_update's 0.1 floor does not apply to errors
    assert logged["sql/exec_error_rate"] == 1.0
    assert digest(database) == before
    assert sqlite3.connect(database).execute("SELECT count(*) FROM t").fetchone() == (3,)


def test_endless_recursive_query_is_stopped_at_its_limit(db_root):
    endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
    reward = QatchReward(db_root=str(db_root), max_timeout_s=0.5)  # limit min(1.2·5 + 10, 0.5) = 0.5 s
    rewards, logged = score(reward, [endless, "SELECT a FROM t"], "SELECT a FROM t")
    assert rewards == [0.0, 1.0]
    assert logged["sql/timeout_rate"] == 0.5 and logged["sql/exec_error_rate"] == 0.5


def test_too_many_rows_is_an_error_and_a_failing_gold_is_not_applicable(db_root):
    rewards, _ = score(QatchReward(db_root=str(db_root), max_rows=2), ["SELECT a FROM t"], "SELECT 1")
    assert rewards == [0.0]  # 3 rows > max_rows
    rewards, logged = score(QatchReward(db_root=str(db_root)), ["SELECT a FROM t"], "SELECT nope FROM t")
    assert rewards == [None] and logged["sql/gold_error_rate"] == 1.0


def test_queries_are_batched_and_cached(db_root, monkeypatch):
    calls = []
    real = executor_module.run_sql_batch

    def counting(database, queries, **kwargs):
        calls.append(list(queries))
        return real(database, queries, **kwargs)

    monkeypatch.setattr(executor_module, "run_sql_batch", counting)
    reward = QatchReward(db_root=str(db_root), num_workers=1)
    completions = ["SELECT a FROM t", "SELECT b FROM t", "SELECT a FROM t"]
    first, _ = score(reward, completions, "SELECT a FROM t")
    assert first == [1.0, round((0 + 0 + 1) / 3, 3), 1.0]
    assert len(calls) == 1 and sorted(calls[0]) == ["SELECT a FROM t", "SELECT b FROM t"]  # gold deduplicated
    assert score(reward, completions, "SELECT a FROM t")[0] == first and len(calls) == 1  # all from the cache


# --- card test 6 and the format rewards --------------------------------------------------------------------------------
FORMAT_CASES = [
    "<think>a</think><answer>SELECT 1</answer>",
    "<answer>SELECT 1</answer>",
    "  <THINK>\n a \n</Think>\n\n<answer>\nSELECT 1\n</ANSWER>\n ",
    "<think></think><answer></answer>",
    "<think>a</think> text <answer>SELECT 1</answer>",
    "<think>a</think><answer>SELECT 1</answer> trailing",
    "<think>a</think><answer>x</answer><think>b</think><answer>y</answer>",
    "<think><answer></think></answer>",
    "<think></think>",
    "<think>a</think><answer>SELECT 1",
    "",
]


@pytest.mark.parametrize("text", FORMAT_CASES)
def test_format_ok_agrees_with_the_official_regex(text):
    official = re.compile(FORMAT_PATTERN.format(think="think", answer="answer"), re.DOTALL | re.IGNORECASE)
    assert format_ok(text) == bool(official.fullmatch(text.strip()))


def test_format_card_examples_and_tag_count():
    fmt = trl_ext.get("reward", "think2sql_format").build()
    assert fmt(None, ["<think>a</think><answer>SELECT 1</answer>", "<answer>SELECT 1</answer>"]) == [1.0, 0.0]
    assert tag_count_score("<think>\nr\n</think>\n<answer>\nSELECT 1\n</answer>") == 1.0
    assert tag_count_score("<think>r</think><answer>SELECT 1</answer>") == 0.0
    # "<think>\n", "\n</think>\n", "\n<answer>\n" once each; "\n</answer>" missing
    assert tag_count_score("<think>\nr\n</think>\n<answer>\nSELECT 1</answer>") == 0.75
    assert tag_count_score("<think>\n<think>\n\n</answer>") == 0.25  # "<think>\n" twice; "\n</answer>" once


def test_custom_tags_and_small_update():
    assert format_ok("<reason>r</reason><sql>SELECT 1</sql>", think_tag="reason", answer_tag="sql")
    assert extract_sql("<sql>```sql\nSELECT 2\n```</sql>", answer_tag="sql") == "SELECT 2"
    assert [small_update(s, ok) for s, ok in [(1.0, False), (0.5, True), (0.05, True), (0.0, True), (0.5, False)]] == [
        1.0,
        0.5,
        0.1,
        0.1,
        0.0,
    ]


def test_garbage_completions_score_zero_without_raising(db_root):
    garbage = [None, 42, b"SELECT a FROM t", [["nested"]], {"role": "assistant"}, "x" * 200_000, "<answer>" * 50_000]
    rewards, _ = score(QatchReward(db_root=str(db_root)), garbage, "SELECT a FROM t")
    assert rewards == [0.0] * len(garbage)
    fmt = trl_ext.get("reward", "think2sql_format").build()
    huge = "<think>" + " " * 60_000 + "</think>" + " " * 60_000 + "x"  # quadratic for the official regex
    assert fmt(None, [*garbage, huge]) == [0.0] * (len(garbage) + 1)
    conversational = [[{"role": "assistant", "content": "<think>t</think><answer>SELECT a FROM t</answer>"}]]
    assert score(QatchReward(db_root=str(db_root)), conversational, "SELECT a FROM t")[0] == [1.0]


def test_missing_column_refuses_and_bad_rows_are_not_applicable(db_root, caplog):
    reward = QatchReward(db_root=str(db_root))
    with pytest.raises(RewardSetupError, match="'target_sql'"):
        asyncio.run(reward(None, ["SELECT 1"], db_id=["toy"]))
    kwargs = {"target_sql": ["SELECT 1", None, "SELECT 1"], "db_id": ["absent", "toy", "../toy"]}
    assert asyncio.run(reward(None, ["SELECT 1"] * 3, **kwargs)) == [None, None, None]
    assert "'absent', and there is no database at" in caplog.text
    with pytest.raises(ValueError, match="max_rows"):
        Think2SQLConfig(max_rows=0)
    with pytest.raises(ValueError, match="reward='f1'"):
        Think2SQLConfig(reward="f1")


def test_timeout_follows_the_gold_time():
    config = Think2SQLConfig()
    assert config.timeout_for(None) == 1.2 * 5 + 10  # default t_gold 5 s
    assert config.timeout_for(100.0) == 130.0
    assert config.timeout_for(1000.0) == 500.0  # capped


def test_reward_is_picklable_with_a_distinct_name(db_root):
    reward = trl_ext.get("reward", "think2sql_ex").build(db_root=str(db_root), small_update=True)
    plain = trl_ext.get("reward", "think2sql_ex").build(db_root=str(db_root))
    assert reward.__name__.startswith("think2sql_ex_") and plain.__name__.startswith("think2sql_ex_")
    assert len({reward.__name__, plain.__name__, QatchReward().__name__, "think2sql_ex"}) == 4
    clone = pickle.loads(pickle.dumps(reward))
    assert score(clone, ["SELECT DISTINCT a FROM t"], "SELECT a FROM t")[0] == [1.0]


# --- the built-in data and the CLI -------------------------------------------------------------------------------------
def test_builtin_text2sql_golds_execute_and_score_one():
    data = build_text2sql()
    assert (len(data["train"]), len(data["test"])) == (40, 20)
    assert set(data["train"].column_names) == {"prompt", "target_sql", "db_id"}
    assert set(data["train"]["target_sql"]).isdisjoint(list(data["test"]["target_sql"]))
    assert max(sum(len(m["content"]) for m in row["prompt"]) for row in data["train"]) <= 1200
    golds = list(data["train"]["target_sql"]) + list(data["test"]["target_sql"])
    answers = [f"<think>t</think><answer>```sql\n{sql}\n```</answer>" for sql in golds]
    kwargs = {"target_sql": golds, "db_id": ["shop"] * 60}
    assert asyncio.run(QatchReward()(None, answers, **kwargs)) == [1.0] * 60  # gold against itself
    assert list(trl_ext.get("dataset", "text2sql").build()["test"]["target_sql"]) == golds[40:]


def test_cli_grpo_with_think2sql_rewards(tiny_model_dir, tmp_path, capfd):
    code = main(
        train_argv(
            "grpo",
            tiny_model_dir,
            str(tmp_path / "grpo"),
            "--dataset_name",
            "builtin:text2sql",
            "--rewards",
            "think2sql_qatch,think2sql_format",
            "--reward_weights",
            "0.95",
            "0.05",
            *tiny_grpo_flags(2),
        )
    )
    out = "".join(capfd.readouterr())
    assert code == 0
    assert "rewards/think2sql_qatch/mean" in out and "sql/exec_error_rate" in out and "sql/ex" in out
