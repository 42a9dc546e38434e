"""``import unmask``: the library's front door (what it exports, how fast, what its settings are called)."""

import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import unmask
from unmask.errors import SettingError, UnknownNameError

SRC = str(Path(unmask.__file__).resolve().parents[1])


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": SRC, "PATH": "/usr/bin:/bin"},
    )


def test_import_unmask_loads_no_heavy_library():
    result = run_python(
        "import sys, unmask; print(sorted(m for m in ('torch', 'timm', 'cv2', 'pandas', 'av') if m in sys.modules))"
    )
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stderr


def test_the_backbone_registry_imports_timm_only_when_a_spec_is_read():
    result = run_python(
        "import sys\nfrom unmask.models.registry import BACKBONES, PAPER_BACKBONES, get_spec\n"
        "names = sorted(BACKBONES); before = 'timm' in sys.modules\n"
        "print(before, 'xception' in BACKBONES, len(PAPER_BACKBONES), get_spec('xception').mean, "
        "'timm' in sys.modules)"
    )
    assert result.returncode == 0 and result.stdout.split(" ", 3)[:3] == ["False", "True", "4"], result.stderr
    assert result.stdout.strip().endswith("(0.5, 0.5, 0.5) True"), result.stdout


def test_every_stage_is_one_call_on_unmask():
    for name in unmask.__all__:
        assert getattr(unmask, name) is not None, name
    for verb in ("prepare", "train", "evaluate", "export"):
        assert inspect.isfunction(getattr(unmask, verb)), verb
    assert inspect.isclass(unmask.Detector) and inspect.isclass(unmask.TrainConfig)
    assert unmask.export.__name__ == "export_model" and unmask.PrepareConfig.__name__ == "PrepareConfig"


def test_each_stage_is_one_function_in_its_package(tmp_path):
    from unmask.data import prepare
    from unmask.evaluation import evaluate
    from unmask.predict import explain_file
    from unmask.training import train

    for function in (explain_file, prepare, train, evaluate):
        assert inspect.isfunction(function), function
    assert unmask.explain_file is explain_file
    with pytest.raises(unmask.UnmaskError, match="^No such file: .*missing.mp4"):
        unmask.explain_file(tmp_path / "run", tmp_path / "missing.mp4", tmp_path / "out")


def test_importing_any_module_never_runs_the_command_line():
    # With arguments that would make the command line print and exit, were it run.
    result = run_python(
        "import sys; sys.argv = ['unmask', '--version']\n"
        "import importlib, pkgutil, unmask\n"
        "names = [m.name for m in pkgutil.walk_packages(unmask.__path__, 'unmask.')]\n"
        "[importlib.import_module(n) for n in names]\n"
        "print(len(names), 'unmask.__main__' in names)"
    )
    assert result.returncode == 0, result.stderr
    count, has_main = result.stdout.split()
    assert int(count) > 50 and has_main == "True", result.stdout


def test_an_unknown_setting_lists_the_valid_ones_and_old_names_are_unknown():
    with pytest.raises(
        UnknownNameError, match="Unknown prepare setting 'sise'; choose one of .*size.*Did you mean 'size'"
    ):
        unmask.PrepareConfig("folder", sise=3)
    with pytest.raises(UnknownNameError, match="Unknown prepare setting 'size_px'"):  # names from before 0.1.0
        unmask.PrepareConfig("folder", size_px=64)
    with pytest.raises(UnknownNameError, match="Unknown training setting 'effective_beta'"):
        unmask.make_config(effective_beta=0.9)
    with pytest.raises(
        UnknownNameError, match="Unknown training setting 'epoch'.*batch_sampler.*Did you mean 'epochs'"
    ):
        unmask.TrainConfig(epoch=3)
    with pytest.raises(UnknownNameError, match="Unknown frame sampler setting"):
        unmask.FrameSampler(frames=3)


def test_settings_are_named_as_the_command_line_flags():
    from unmask.cli import app

    flags = {
        command.name: {p.name for p in command.params if p.param_type_name == "option"}
        for command in __import__("typer").main.get_command(app).commands.values()
    }
    prepare = {f.name for f in __import__("dataclasses").fields(unmask.PrepareConfig)}
    train = {f.name for f in __import__("dataclasses").fields(unmask.TrainConfig)}
    # every prepare and train flag that sets a field has the field's name
    assert {
        "size",
        "margin",
        "keep",
        "detector",
        "image_format",
        "max_side",
        "second_pass",
        "near_pass",
        "bridge_max_gap",
        "workers",
        "device",
        "split_seed",
        "split_fractions",
        "shard",
    } <= prepare & flags["prepare"]
    not_fields = {
        "out",
        "preset",
        "resume",
        "cost_missed_fake",
        "cost_false_alarm",  # costs: TrainConfig.costs
        "config_file",
        "print_config",
    }  # the settings file, printing them
    assert flags["train"] - not_fields <= train, flags["train"] - not_fields - train


def test_errors_from_python_name_settings_and_the_command_line_shows_flags():
    with pytest.raises(SettingError) as caught:
        unmask.PrepareConfig("folder", size=4)
    assert str(caught.value) == "size must lie between 8 and 1024 pixels, not 4"
    assert caught.value.for_cli() == "--size must lie between 8 and 1024 pixels, not 4"
    with pytest.raises(SettingError) as caught:
        unmask.make_config(batch_sampler="balanced", class_weights="effective")
    assert "--" not in str(caught.value)
    assert caught.value.for_cli().startswith(
        "--batch-sampler balanced already draws the classes equally; with --class-weights effective"
    )
    resume = SettingError("pass resume=True to go on, or cache=False", "resume", "cache")
    assert resume.for_cli() == "pass --resume to go on, or --no-cache"


def test_settings_recorded_under_old_names_still_load():
    from unmask.training.config import config_from_recorded

    old = {
        "model": "mobilenetv3_small",
        "size_px": 96,
        "effective_beta": 0.99,
        "sampler": "balanced",
        "class_weights": "none",
        "max_steps_per_epoch": 3,
        "costs": {"missed_fake": 2.0, "false_alarm": 1.0},
    }
    config = config_from_recorded(old)
    assert (config.size, config.beta, config.batch_sampler, config.max_steps) == (96, 0.99, "balanced", 3)
    assert config.costs == unmask.Costs(2.0, 1.0)
    prepare = unmask.PrepareConfig.from_recorded(
        {"dataset": "ffpp", "size_px": 96, "max_side_px": 480, "second_pass_side_px": 960, "seed": 7}
    )
    assert (prepare.size, prepare.max_side, prepare.second_pass_side, prepare.split_seed) == (96, 480, 960, 7)


def test_the_code_parses_as_python_3_10():
    # pyproject declares Python >= 3.10; this machine runs 3.11, so at least the syntax is checked
    import ast

    for path in Path(unmask.__file__).parent.rglob("*.py"):
        ast.parse(path.read_text(), filename=str(path), feature_version=(3, 10))


def test_server_settings_are_named_as_serve_flags():
    from unmask.serve import ServeSettings

    assert ServeSettings.make(max_upload_mb=1.5).max_upload_bytes == 1_572_864
    with pytest.raises(
        UnknownNameError, match="Unknown server setting 'max_upload_bytes'.*Did you mean 'max_upload_mb'"
    ):
        ServeSettings.make(max_upload_bytes=10)
    with pytest.raises(UnknownNameError, match="Unknown server setting 'heatmap'.*Did you mean 'heatmaps'"):
        ServeSettings.make(heatmap=3)
