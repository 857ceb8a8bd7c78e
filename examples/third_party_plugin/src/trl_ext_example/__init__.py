"""An example third-party trl-ext plugin: it adds the method `example_sft` and the reward `example_length`.

Installed with `pip install -e examples/third_party_plugin`, it is found through its entry point (group `trl_ext`,
name `example`) exactly like the built-in plugins, and `trl-ext list` shows its components.
"""

from trl_ext import Method, Reward, hookimpl
from trl_ext.plugin.lazy import lazy_exports

# The trainer imports TRL and torch: the records name it by path, so `trl-ext list` stays fast.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {"ExampleSFTConfig": ".trainer", "ExampleSFTTrainer": ".trainer", "length_reward": ".rewards"},
)

__version__ = "0.1.0"


@hookimpl
def register_methods(register):
    register(
        Method(
            name="example_sft",
            trainer="trl_ext_example.trainer:ExampleSFTTrainer",
            config="trl_ext_example.trainer:ExampleSFTConfig",
            base="sft",
            family="sft-loss",
            description="Example: SFT's loss times nll_scale (shows how a third-party method is registered).",
            example="trl-ext train example_sft --model_name_or_path smollm2-135m --dataset_name builtin:arith "
            "--nll_scale 0.5 --max_steps 10",
        )
    )


@hookimpl
def register_rewards(register):
    register(
        Reward(
            name="example_length",
            factory="trl_ext_example.rewards:length_reward",
            family="grpo-reward",
            options={
                "min_chars": "Shortest completion that scores 1.0, in characters (default 1).",
                "max_chars": "Longest completion that scores 1.0, in characters (default 200).",
            },
            description="Example: 1.0 if the completion (its last message's content) has between min_chars and "
            "max_chars characters, else 0.0.",
        )
    )


__all__ = ["ExampleSFTConfig", "ExampleSFTTrainer", "length_reward"]
