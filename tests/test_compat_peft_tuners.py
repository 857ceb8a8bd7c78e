"""trl_ext.compat.peft_tuners against peft 0.21.2: a tuner type peft does not ship registers through the
PEFT_TYPE_TO_* mappings under a string key, once; `import trl_ext` registers the declared tuners when peft is
imported (without importing peft itself); loading a saved trl-ext adapter without trl_ext names the fix."""

import os
import subprocess
import sys
import textwrap

import peft
import pytest
from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING, PEFT_TYPE_TO_PREFIX_MAPPING, PEFT_TYPE_TO_TUNER_MAPPING

import trl_ext.adapters
from trl_ext.compat.peft_tuners import PEFT_VERSION, is_registered, register_tuner, tuner_type


def _run(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env, timeout=300
    )


def test_pinned_peft_version_and_why_register_peft_method_is_not_used():
    assert peft.__version__ == PEFT_VERSION
    from peft.utils import register_peft_method

    with pytest.raises(ValueError, match="Unknown PEFT type SSF"):  # only names already in PeftType are accepted
        register_peft_method(name="ssf", config_cls=object, model_cls=object, prefix="ssfx_")


def test_register_is_idempotent_and_refuses_clashes():
    from trl_ext_plugins.ssf.tuner import SSFConfig, SSFModel

    trl_ext.adapters.register_declared()
    key = tuner_type("ssf")
    assert is_registered("ssf")
    assert PEFT_TYPE_TO_CONFIG_MAPPING[key] is SSFConfig and PEFT_TYPE_TO_TUNER_MAPPING[key] is SSFModel
    assert PEFT_TYPE_TO_PREFIX_MAPPING[key] == "ssf_"
    sizes = len(PEFT_TYPE_TO_CONFIG_MAPPING), len(PEFT_TYPE_TO_TUNER_MAPPING), len(PEFT_TYPE_TO_PREFIX_MAPPING)
    assert register_tuner("ssf", SSFConfig, SSFModel, "ssf_") == key  # again: nothing changes
    trl_ext.adapters.register_declared()
    assert (
        len(PEFT_TYPE_TO_CONFIG_MAPPING),
        len(PEFT_TYPE_TO_TUNER_MAPPING),
        len(PEFT_TYPE_TO_PREFIX_MAPPING),
    ) == sizes
    with pytest.raises(ValueError, match="other classes"):
        register_tuner("ssf", dict, SSFModel, "ssf_")
    with pytest.raises(ValueError, match="already used"):
        register_tuner("notssf", dict, type("M", (), {"prefix": "lora_"}), "lora_")
    with pytest.raises(ValueError, match="lower case"):
        register_tuner("SSF", SSFConfig, SSFModel, "ssf_")
    # peft reads `.value` of a peft_type in some messages; the key is a str and answers it
    assert key.value == str(key) and key == str(key) and "import trl_ext" in key


def test_import_trl_ext_imports_no_peft_and_registers_when_peft_is_imported():
    proc = _run(
        """
        import sys
        import trl_ext
        assert "peft" not in sys.modules and "torch" not in sys.modules
        from peft.mapping import PEFT_TYPE_TO_TUNER_MAPPING
        from trl_ext.compat.peft_tuners import tuner_type
        print(PEFT_TYPE_TO_TUNER_MAPPING[tuner_type("ssf")].__name__)
        """
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split()[-1] == "SSFModel"


def test_loading_without_trl_ext_says_to_import_it(tmp_path, tiny_model_dir):
    """A saved SSF adapter loaded by a process that has not imported trl_ext: peft's KeyError names the fix; after
    `import trl_ext` (peft already imported: registered at once) the same call loads it."""
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    from trl_ext_plugins.ssf.tuner import SSFConfig

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir), SSFConfig())
    model.save_pretrained(tmp_path / "adapter")
    proc = _run(
        f"""
        import sys
        from peft import PeftModel
        from transformers import AutoModelForCausalLM
        base = AutoModelForCausalLM.from_pretrained({tiny_model_dir!r})
        try:
            PeftModel.from_pretrained(base, {str(tmp_path / "adapter")!r})
        except KeyError as exc:
            assert "trl_ext" not in sys.modules
            print("ERROR", exc)
        import trl_ext
        PeftModel.from_pretrained(base, {str(tmp_path / "adapter")!r})
        print("LOADED")
        """
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ERROR" in proc.stdout and "run `import trl_ext` before PeftModel.from_pretrained" in proc.stdout
    assert "LOADED" in proc.stdout


def test_tuner_base_hooks_sit_on_the_pinned_private_methods():
    """TrlExtTuner overrides these BaseTuner methods (peft 0.21.2 signatures) and calls the last two."""
    import inspect

    from peft.tuners.tuners_utils import BaseTuner

    from trl_ext.compat.peft_tuners import TrlExtTuner

    assert issubclass(TrlExtTuner, BaseTuner)
    params = {
        "_create_and_replace": [
            "self",
            "peft_config",
            "adapter_name",
            "target",
            "target_name",
            "parent",
            "current_key",
        ],
        "_unload_and_optionally_merge": ["self", "merge", "progressbar", "safe_merge", "adapter_names"],
        "_check_target_module_exists": ["peft_config", "key"],
        "_check_merge_allowed": ["self"],
        "_replace_module": ["self", "parent", "child_name", "new_module", "child"],
    }
    for name, expected in params.items():
        assert list(inspect.signature(getattr(BaseTuner, name)).parameters)[: len(expected)] == expected, name
