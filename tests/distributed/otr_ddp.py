"""One OTR optimizer step on a fixed global batch of 4; writes the loss and the weight update to argv[1].

Run under `torchrun --nproc_per_node N` (gloo, CPU) with per-device batch 4/N, or as one process with gradient
accumulation; tests/plugins/test_otr.py compares the results. Uses the deterministic `expected` estimator (MC rollouts
are drawn per process, so they differ between layouts by design); argv[4] is the normalization."""

import sys

from datasets import Dataset

from trl_ext.testing import SGD_STEP_ARGS, save_step_result, tiny_model, tiny_tokenizer, train_one_step, uneven_rows
from trl_ext_plugins.otr import OTRConfig, OTRTrainer

out_path, per_device, accumulation, normalization = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
rows = uneven_rows()
model = tiny_model()
config = OTRConfig(
    output_dir="/tmp/otr-ddp",
    per_device_train_batch_size=per_device,
    gradient_accumulation_steps=accumulation,
    **SGD_STEP_ARGS,
    otr_estimator="expected",
    otr_temperature=1.3,
    otr_beta=-0.1,
    otr_normalization=normalization,
)
trainer = OTRTrainer(
    model=model, args=config, train_dataset=Dataset.from_list(rows), processing_class=tiny_tokenizer()
)
save_step_result(trainer, train_one_step(trainer), out_path)
