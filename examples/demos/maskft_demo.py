"""maskft's small-scale demonstration: fictitious one-sentence biographies ("<Name> was born in <City> and works as
a <Job>.", no paraphrases), full fine-tuning of SmolLM2-135M-Instruct for the same epochs and steps with (a) plain
next-token training on the biographies (SFT on the unmodified `text` rows) and (b) masked fine-tuning (knowledge
mode: the masked copy in the prompt, the biography as the completion, masks re-sampled every epoch). Prints forward
QA ("Where was <Name> born?") and backward QA ("Who was born in <City> and works as a <Job>?") accuracy of the base
model and of each arm (greedy answers, normalised answer match).

    python examples/demos/maskft_demo.py [--people 24] [--epochs 5]
"""

import argparse
from pathlib import Path

from datasets import Dataset, DatasetDict
from transformers import AutoModelForCausalLM, AutoTokenizer

from trl_ext.devtools.demo import markdown_table, train_arm
from trl_ext.models import load_model, load_tokenizer
from trl_ext_plugins.maskft.data import bio, people, qa_rows
from trl_ext_plugins.maskft.evaluation import qa_accuracy


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--people", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--output_dir", default="outputs/maskft-demo")
    args = parser.parse_args()

    folks = people(args.people)
    root = Path(args.output_dir)
    docs = Dataset.from_list([{"text": bio(p)} for p in folks])
    DatasetDict({"train": docs}).save_to_disk(str(root / "data"))
    qa = Dataset.from_list([row for p in folks for row in qa_rows(p)])

    def scores(model, tok) -> list[str]:
        acc = qa_accuracy(model, tok, qa, max_new_tokens=24, batch_size=24)
        return [f"{acc['eval/qa_acc_forward']:.3f}", f"{acc['eval/qa_acc_backward']:.3f}"]

    base_model, base_tok = load_model("smollm2-135m"), load_tokenizer("smollm2-135m")
    rows = [["base model (no training)", *scores(base_model, base_tok), "-"]]
    del base_model
    common = {
        "model_name_or_path": "smollm2-135m",
        "dataset_name": str(root / "data"),
        "num_train_epochs": args.epochs,
        "per_device_train_batch_size": 8,
        "learning_rate": "1e-4",
        "max_length": 256,
    }
    for label, method in (("(a) plain SFT on the bios", "sft"), ("(b) masked FT (maskft)", "maskft")):
        out = root / method
        minutes = train_arm(method, out, **common)
        model, tok = AutoModelForCausalLM.from_pretrained(out), AutoTokenizer.from_pretrained(out)
        rows.append([label, *scores(model, tok), f"{minutes:.1f}"])
        print(rows[-1], flush=True)
    steps = -(-args.people // 8) * args.epochs
    print(f"\nsmollm2-135m full FT, {args.people} biographies x {args.epochs} epochs ({steps} steps, batch 8, lr 1e-4); "
          f"{args.people} forward + {args.people} backward questions")  # fmt: skip
    print(markdown_table(["arm", "forward QA acc", "backward QA acc", "train min"], rows))


if __name__ == "__main__":
    main()
