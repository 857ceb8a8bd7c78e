"""past's small-scale demonstration (the card's): the `past` recipe on SmolLM2-135M-Instruct and builtin:past_facts
(SFT on source facts -> GRPO on source questions -> SFT on target facts + lambda v), then a lambda sweep on the target
model: greedy exact-match accuracy and "holds the city" rate on the held-out target questions, and the per-token NLL
of held-out target documents, for theta_sft_T + lambda v at each lambda (lambda = 0 is the SFT-only target model).
Prints a Markdown table, the card's orthogonality figure (mean |cos| of the SFT and RL deltas) and the time of one
extraction and one injection.

    OMP_NUM_THREADS=1 python examples/demos/past_demo.py [--grpo_steps 30] [--output_dir outputs/past-demo]
    OMP_NUM_THREADS=1 python examples/demos/past_demo.py --skip_train --output_dir DIR   # sweep a finished run
"""

import argparse
import json
import os
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--grpo_steps", type=int, default=30)
    parser.add_argument("--lams", type=float, nargs="+", default=[0.0, 0.5, 1.0, 1.5])
    parser.add_argument("--output_dir", default="outputs/past-demo")
    parser.add_argument("--skip_train", action="store_true")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    from trl_ext.devtools.demo import markdown_table
    from trl_ext.models import load_model, load_tokenizer
    from trl_ext_plugins.past import PaSTOptions, SkillInjectCallback, SkillVector, run_past

    root = Path(args.output_dir)
    if not args.skip_train:
        options = PaSTOptions(output_dir=str(root))
        options.grpo["max_steps"] = args.grpo_steps
        start, cpu = time.time(), time.process_time()
        run_past(options)
        print(f"recipe: {time.time() - start:.0f} s wall, {time.process_time() - cpu:.0f} CPU-s (this process)")
    state = json.loads((root / "past_state.json").read_text())
    extract = next(v for k, v in state.items() if k.startswith("extract:"))
    inject = next(v for k, v in state.items() if k.startswith("inject:"))

    final_dir = inject["output_dir"]
    model, tokenizer = load_model(final_dir), load_tokenizer(final_dir)
    t0 = time.time()
    skill = SkillVector.load(root / "skill_vector.safetensors")
    skill.remove(model, inject["past/lam"])  # back to theta_sft_T
    t_inject = time.time() - t0
    theta_sft_t = {k: v.clone() for k, v in model.state_dict().items()}
    measure = SkillInjectCallback(evaluate=True).measure
    rows = []
    for lam in args.lams:
        model.load_state_dict(theta_sft_t)
        skill.apply(model, lam)
        figures = measure(model, tokenizer)
        rows.append(
            [
                f"{lam:g}",
                f"{figures['past/target_acc@']:.3f}",
                f"{figures['past/target_contains@']:.3f}",
                f"{figures['past/target_doc_nll@']:.3f}",
            ]
        )
    t0 = time.time()
    SkillVector.from_models(load_model(str(root / "stage-2-grpo")), load_model(str(root / "stage-1-sft")))
    t_extract = time.time() - t0
    print(markdown_table(["lambda", "target exact-match acc", "answer holds the city", "target doc NLL"], rows))
    print(
        f"mean |cos|(dW_sft, dW_rl) = {extract.get('past/mean_abs_cos', float('nan')):.4f}, "
        f"||v|| = {extract['past/skill_norm']:.4f} over {extract['tensors']} tensors"
    )
    print(f"extraction (two loads + deltas): {t_extract:.1f} s; load + remove of v: {t_inject:.1f} s")
    print(f"threads: {os.environ.get('OMP_NUM_THREADS', 'unset')}")


if __name__ == "__main__":
    main()
