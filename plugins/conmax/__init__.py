"""ConMax (arXiv:2601.04973): compress long reasoning traces by GRPO against a frozen scorer, then SFT on them.

Adds the reward `conmax_confidence` (R_c = α·S_ans + (1−α)·S_think under a frozen auxiliary model, with a format
gate), the transforms `conmax_prompts` (compression prompts for GRPO, bounded to a token budget), `conmax_compress`
(candidate compressions from the trained compressor) and `conmax_select` (the best correct compression per query as
SFT data), and `builtin:conmax_traces` (verbose arithmetic traces). See README.md and
examples/recipes/conmax.yaml.
"""

from trl_ext import Dataset, Recipe, Reward, Transform, hookimpl
from trl_ext.plugin.lazy import lazy_exports

from .paper import PAPER

# These import torch, datasets or transformers: named by path here, imported on first use.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "ConMaxConfig": ".config",
        "ConMaxConfidenceReward": ".rewards",
        "build_compression_prompts": ".transforms",
        "build_sequence": ".scoring",
        "build_traces": ".data:build",
        "compressed_trace": ".scoring",
        "conmax_scores": ".scoring",
        "final_answer_correct": ".transforms",
        "select_best_compressions": ".transforms",
    },
)

__all__ = [
    "PAPER",
    "ConMaxConfidenceReward",
    "ConMaxConfig",
    "build_compression_prompts",
    "build_sequence",
    "build_traces",
    "compressed_trace",
    "conmax_scores",
    "final_answer_correct",
    "select_best_compressions",
]

_CONFIG_OPTIONS = {
    "aux_model_name_or_path": "Frozen auxiliary scorer π_φ (default: the built-in smollm2-135m, ours).",
    "alpha": "Weight of S_ans; 1−alpha weighs S_think (default 0.5, ours).",
    "span_tag": "Tag of the compressed span <tag>…</tag> (default compressed, ours).",
    "require_span": "A completion without a closed span scores invalid_reward (default true, ours).",
    "require_shorter": "ẑ must have fewer aux tokens than the trace, else invalid_reward (default true, ours).",
    "invalid_reward": "Reward of a gated completion (default -10, ours).",
    "think_open": "Opens π_φ's thinking span (default <think>).",
    "think_close": "Closes π_φ's thinking span (default </think>).",
    "answer_prefix": "Text between think_close and the answer (default newline).",
    "aux_batch_size": "Sequences per auxiliary forward (default 8).",
    "aux_dtype": "float32, bfloat16 or float16 (default float32).",
    "aux_chat_template": "Render the query with π_φ's chat template (default true).",
    "aux_max_length": "Longest auxiliary sequence scored; longer ones are not applicable (default 4096, ours).",
    "policy_tokenizer": "Policy tokenizer for conmax/compression_ratio (default: the auxiliary one).",
}


@hookimpl
def register_rewards(register):
    register(
        Reward(
            name="conmax_confidence",
            family="grpo-reward",
            paper=PAPER,
            example="trl-ext train grpo --rewards conmax_confidence --dataset_name builtin:conmax_traces "
            "--max_steps 5 --num_generations 4",
            factory="trl_ext_plugins.conmax.rewards:ConMaxConfidenceReward.from_options",
            required_columns=("query", "trace", "answer"),
            options={**_CONFIG_OPTIONS, "config": "A ConMaxConfig instead of the fields above (Python only)."},
            description="ConMax's R_c = α·S_ans + (1−α)·S_think of the <compressed> span ẑ under a frozen auxiliary "
            "model (one forward: mean log p(answer | query, ẑ) and mean log p(ẑ | query)); invalid_reward when the "
            "span is missing, empty or not shorter than `trace`. Columns from conmax_prompts. Logs conmax/S_ans, "
            "conmax/S_think, conmax/compression_ratio, conmax/invalid_frac.",
        )
    )


@hookimpl
def register_transforms(register):
    common = {"family": "grpo-reward", "paper": PAPER}
    register(
        Transform(
            name="conmax_prompts",
            factory="trl_ext_plugins.conmax.transforms:conmax_prompts",
            needs_model=True,
            required_columns=("prompt", "trace", "answer"),
            options={
                "template": "User message holding {query} and {trace} (default: ConMax-style instruction, ours).",
                "system_prompt": "System message (default: ours; null for none).",
                "max_prompt_tokens": "Token budget of each prompt, chat template included, in the policy's tokens "
                "(default 1024, ours).",
                "overflow": "A trace over budget is cut (truncate, default) or its row dropped (drop).",
            },
            example="trl-ext transform conmax_prompts --dataset_name builtin:conmax_traces --dataset_config traces "
            "--max_prompt_tokens 512 --output prompts.jsonl",
            description="(prompt=x, trace=z, answer=y) -> GRPO rows: prompt = instruction to compress z into "
            "<compressed>…</compressed>, bounded to max_prompt_tokens; query = x, trace, answer kept for the reward.",
            **common,
        )
    )
    register(
        Transform(
            name="conmax_compress",
            factory="trl_ext_plugins.conmax.transforms:conmax_compress",
            required_columns=("prompt",),
            options={
                "compressor": "The GRPO-trained compressor (output folder, Hub id or alias).",
                "num_candidates": "Sampled compressions per row (default 4).",
                "max_new_tokens": "Length limit of a compression (default 256).",
                "temperature": "Sampling temperature; 0 for greedy (default 1.0).",
                "batch_size": "Prompts per generate call (default 8).",
                "seed": "Torch seed before sampling (default 0).",
            },
            example="trl-ext transform conmax_compress --dataset_name builtin:conmax_traces --compressor "
            "outputs/conmax/stage-1-grpo --output candidates.jsonl",
            description="Sample num_candidates compressions of each conmax_prompts row with the trained compressor "
            "into a `candidates` column.",
            **common,
        )
    )
    register(
        Transform(
            name="conmax_select",
            factory="trl_ext_plugins.conmax.transforms:conmax_select",
            required_columns=("query", "trace", "answer", "candidates"),
            options={
                **_CONFIG_OPTIONS,
                "fallback": "A query with no valid, correct candidate is dropped (drop, default) or keeps its "
                "original trace (original).",
                "require_correct": "Keep only candidates whose final answer is the gold answer (default true).",
            },
            example="trl-ext transform conmax_select --dataset_name candidates.jsonl --output sft.jsonl",
            description="Per query, the highest-reward candidate (conmax_confidence) with a correct final answer -> "
            "SFT rows {prompt: x, completion: <think>ẑ</think> y, conmax_reward, conmax_ratio}.",
            **common,
        )
    )


@hookimpl
def register_datasets(register):
    register(
        Dataset(
            name="conmax_traces",
            factory="trl_ext_plugins.conmax.data:build",
            forms=("grpo", "traces", "sft"),
            family="builtin",
            paper=PAPER,
            description="80 arithmetic problems (64 train / 16 test) with verbose traces (each step verified twice) "
            "and their answers; grpo: compression prompts (conmax_prompts' defaults); traces: prompt/trace/answer; "
            "sft: the long traces as completions.",
            columns={
                "grpo": ("prompt", "query", "trace", "answer"),
                "traces": ("prompt", "trace", "answer"),
                "sft": ("prompt", "completion", "answer"),
            },
        )
    )


@hookimpl
def register_recipes(register):
    register(
        Recipe(
            name="conmax",
            source="trl_ext_plugins.conmax:recipes/conmax.yaml",
            paper=PAPER,
            description="GRPO-train a trace compressor against the frozen scorer, compress and select the traces with it, then SFT the target model on them.",
        )
    )
