"""``--help`` tells what the code does; settings can be printed, written to a file and read back."""

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from unmask.data.config import parse_shard
from unmask.errors import UnmaskError
from unmask.models.registry import BACKBONES, PAPER_BACKBONES
from unmask.settings import named_settings, setting
from unmask.training.config import PRESETS, TrainConfig, make_config, read_config_file

SRC = Path(__file__).resolve().parents[2] / "src"


def unmask(*args, env=None, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "unmask", *map(str, args)], capture_output=True, text=True, timeout=300, env=env, cwd=cwd
    )


@pytest.fixture(scope="module")
def train_help():
    result = unmask("train", "--help")
    assert result.returncode == 0, result.stderr
    return " ".join(result.stdout.split())  # the help wraps to the terminal: compare word by word


def _shown(value) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


@pytest.mark.parametrize(
    "option, field",
    [
        ("--lr", "lr"),
        ("--batch-size", "batch_size"),
        ("--size", "size"),
        ("--protocol", "protocol"),
        ("--select-metric", "select_metric"),
        ("--early-stopping", "early_stopping"),
        ("--no-augment", "augment"),
    ],
)
def test_train_help_shows_the_value_each_preset_uses(train_help, option, field):
    default = getattr(TrainConfig(), field)
    paper = PRESETS["paper"][field]
    assert default != paper  # the test is about options the presets set differently
    entry = train_help.split(f" {option} ", 1)[1].split(" --", 1)[0]
    assert f"[default: {_shown(default)}; paper preset: {_shown(paper)}]" in entry, entry


def test_train_help_states_the_codes_default_model_and_every_choice(train_help):
    assert f"--model [{'|'.join(BACKBONES)}]" in train_help and "efficientnet_lite0" in train_help
    assert (
        f"[default: {TrainConfig().model}; paper preset: one of {', '.join(PAPER_BACKBONES)}, required]" in train_help
    )
    assert "--batch-sampler [shuffle|balanced]" in train_help and " --sampler " not in train_help
    assert "--augment / --no-augment Flip" in train_help  # a flag: no <bool> to type
    assert "<str>" not in train_help.split("--device")[0]  # every choice before --device is a choice list


def test_the_paper_preset_refuses_another_backbone():
    with pytest.raises(UnmaskError, match="preset paper needs one of the paper.s backbones.*not mobilenetv3_small"):
        make_config("paper", model="mobilenetv3_small")


def test_print_config_shows_the_resolved_settings_and_a_file_gives_them_back(tmp_path):
    result = unmask("train", "--preset", "paper", "--model", "xception", "--lr", "0.01", "--print-config")
    assert result.returncode == 0, result.stderr
    assert "INFO" not in result.stderr  # without -v: warnings only
    printed = json.loads(result.stdout)
    assert printed == dataclasses.asdict(make_config("paper", model="xception", lr=0.01))
    (tmp_path / "printed.json").write_text(result.stdout)
    again = unmask("train", "--config", tmp_path / "printed.json", "--batch-size", "4", "--print-config")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == {**printed, "batch_size": 4}  # the file, then the flags over it

    (tmp_path / "mine.yaml").write_text(
        "preset: paper\nmodel: efficientnetv2_s\ncosts: {missed_fake: 5, false_alarm: 1}\n"
    )
    values = read_config_file(tmp_path / "mine.yaml")
    config = make_config(values.pop("preset"), **values)
    assert (config.model, config.lr, config.costs.threshold) == ("efficientnetv2_s", 1e-3, pytest.approx(1 / 6))
    (tmp_path / "config.json").write_text(json.dumps({"spec": {}, "config": printed, "data": {}}))  # a run's own
    assert make_config(**read_config_file(tmp_path / "config.json")) == make_config("paper", model="xception", lr=0.01)


@pytest.mark.parametrize(
    "text, message",
    [
        ("modle: xception\n", "Unknown training setting"),
        ("[1, 2]\n", "holds no settings"),
        ("a: [\n", "is not valid YAML"),
    ],
)
def test_a_bad_config_file_is_refused_with_what_is_wrong(tmp_path, text, message):
    (tmp_path / "bad.yaml").write_text(text)
    with pytest.raises(UnmaskError, match=message):
        make_config(**read_config_file(tmp_path / "bad.yaml"))


def test_v_logs_more_and_an_old_flag_name_is_unknown():
    result = unmask("-v", "train", "--batch-sampler", "balanced", "--print-config")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["batch_sampler"] == "balanced"
    assert "INFO unmask.training.config: batch sampler balanced: class weights set to none" in result.stderr
    old = unmask("train", "--sampler", "balanced", "--print-config")  # its name before 0.1.0
    assert old.returncode == 2 and "No such option: --sampler" in old.stderr, old.stderr


def test_a_settings_file_takes_todays_names_and_a_runs_config_json_its_recorded_ones(tmp_path):
    (tmp_path / "old.yaml").write_text("effective_beta: 0.9\n")
    with pytest.raises(UnmaskError, match="Unknown training setting 'effective_beta'"):
        make_config(**read_config_file(tmp_path / "old.yaml"))
    (tmp_path / "config.json").write_text(
        json.dumps(
            {"config": {"model": "xception", "effective_beta": 0.9, "costs": {"missed_fake": 1, "false_alarm": 1}}}
        )
    )
    assert make_config(**read_config_file(tmp_path / "config.json")).beta == 0.9  # a run recorded before 0.1.0


def test_train_without_data_or_out_is_a_usage_error():
    result = unmask("train", "--model", "xception")
    assert result.returncode == 2 and "train needs DATA_DIR and --out" in result.stderr, result.stderr


def test_shell_completion_completes_commands_and_model_names(tmp_path):
    entry = shutil.which("unmask", path=str(Path(sys.executable).parent))
    if entry is None:
        pytest.fail(f"no `unmask` entry point beside {sys.executable}; install the package (pip install -e .)")
    env = {**os.environ, "PYTHONPATH": str(SRC), "_UNMASK_COMPLETE": "complete_bash"}
    commands = subprocess.run(
        [entry], capture_output=True, text=True, timeout=120, env={**env, "COMP_WORDS": "unmask tr", "COMP_CWORD": "1"}
    )
    assert commands.returncode == 0 and commands.stdout.split() == ["train"], commands
    models = subprocess.run(
        [entry],
        capture_output=True,
        text=True,
        timeout=120,
        env={**env, "COMP_WORDS": "unmask train --model efficientnetv", "COMP_CWORD": "3"},
    )
    assert models.stdout.split() == [m for m in BACKBONES if m.startswith("efficientnetv")], models
    home = tmp_path / "home"
    home.mkdir()
    installed = subprocess.run(
        [entry, "--install-completion", "bash"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(SRC), "HOME": str(home), "SHELL": "/bin/bash"},
    )
    assert installed.returncode == 0, installed.stderr
    assert "_unmask_completion" in (home / ".bash_completions" / "unmask.sh").read_text()


def test_every_setting_with_a_flag_is_an_option_of_its_command():
    from typer.main import get_command

    from unmask.cli import app
    from unmask.cli._settings import flagged
    from unmask.data.config import PrepareConfig

    commands = get_command(app).commands
    for name, cls in (("train", TrainConfig), ("prepare", PrepareConfig)):
        options = {p.name for p in commands[name].params}
        assert {f.name for f in flagged(cls)} <= options, name


@named_settings("sample setting")
@dataclasses.dataclass(frozen=True)
class Sample:
    speed: int = setting(3, help="How fast.")
    mode: str = setting("a", help="Which mode (of {speed}).", choices=("a", "b"))
    quiet: bool = setting(False, help="Say less.")
    hidden: float = setting(1.0, help="Set in Python only.", flag=False)
    shard: tuple[int, int] | None = setting(None, help="K/N.", parse=parse_shard)


def test_a_new_setting_is_one_field_the_command_line_builds_its_option_from():
    import typer
    from typer.testing import CliRunner

    from unmask.cli._settings import settings_command, settings_help, settings_options

    sample = typer.Typer(rich_markup_mode=None)

    @sample.command(cls=settings_command(lambda: settings_help(Sample)))
    @settings_options(f"{__name__}:Sample", after="out")
    def go(out: str = typer.Option("o", help="Not a setting."), **settings):
        typer.echo(json.dumps({"out": out, **settings}))

    shown = " ".join(CliRunner().invoke(sample, ["--help"]).output.split())
    assert "--speed <int> How fast. [default: 3]" in shown and "--mode [a|b] Which mode (of 3)." in shown
    assert "--quiet / --no-quiet" in shown and "--hidden" not in shown and shown.index("--out") < shown.index("--speed")
    result = CliRunner().invoke(sample, ["--speed", "5", "--quiet", "--shard", "2/3"])
    assert json.loads(result.output) == {"out": "o", "speed": 5, "mode": "a", "quiet": True, "shard": [2, 3]}
    assert "Attributes:" in Sample.__doc__ and "speed: How fast." in Sample.__doc__
