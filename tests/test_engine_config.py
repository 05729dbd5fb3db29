"""Config schema: errors name the dotted key and the file; overrides; inheritance; schedules."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from reid.engine.builders import lr_factor
from reid.engine.config import Config, ConfigError, SchedConfig, load_config, parse_override, save_config

REPO_ROOT = Path(__file__).resolve().parents[1]


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_unknown_key_in_file_names_dotted_key_and_file(tmp_path):
    cfg = write(tmp_path / "bad.yaml", "optim:\n  lr: 0.1\n  lrr: 0.2\n")
    with pytest.raises(ConfigError) as info:
        load_config(cfg)
    message = str(info.value)
    assert "optim.lrr" in message
    assert str(cfg.resolve()) in message


def test_wrong_type_names_key_file_and_value(tmp_path):
    cfg = write(tmp_path / "bad.yaml", "train:\n  epochs: many\n")
    with pytest.raises(ConfigError) as info:
        load_config(cfg)
    message = str(info.value)
    assert "train.epochs" in message and "'many'" in message and "bad.yaml" in message


def test_error_in_base_file_names_the_base(tmp_path):
    write(tmp_path / "base.yaml", "model:\n  bnnek: true\n")
    child = write(tmp_path / "child.yaml", "base: base.yaml\noptim:\n  lr: 0.01\n")
    with pytest.raises(ConfigError) as info:
        load_config(child)
    assert "model.bnnek" in str(info.value) and "base.yaml" in str(info.value)


def test_invalid_yaml_names_line(tmp_path):
    cfg = write(tmp_path / "broken.yaml", "optim:\n  lr: [0.1\n")
    with pytest.raises(ConfigError, match=r"broken.yaml.*line"):
        load_config(cfg)


def test_overrides_are_parsed_as_yaml_and_win(tmp_path):
    cfg = write(tmp_path / "c.yaml", "optim:\n  lr: 0.1\n")
    out = load_config(cfg, ["optim.lr=0.01", "model.backbone=resnet50", "sched.milestones=[20, 40]",
                            "data.root=null", "train.grad_clip=5", "loss.id.params.T=4"])
    assert out.optim.lr == 0.01
    assert out.model.backbone == "resnet50"
    assert out.sched.milestones == [20.0, 40.0]
    assert out.data.root is None
    assert out.train.grad_clip == 5.0
    assert out.loss.id.params == {"T": 4}
    assert out.name == "c"
    assert out.output_dir.startswith(str(Path("runs") / "c-"))


def test_unknown_override_names_key_and_suggests():
    with pytest.raises(ConfigError) as info:
        load_config(None, ["optim.lrr=0.1"])
    assert "optim.lrr" in str(info.value) and "optim.lr" in str(info.value)
    with pytest.raises(ConfigError, match="'train.epochs.x'"):
        load_config(None, ["train.epochs.x=1"])
    with pytest.raises(ConfigError, match="dotted.key=value"):
        load_config(None, ["optim.lr"])


def test_bad_override_value_names_key_and_source():
    with pytest.raises(ConfigError) as info:
        load_config(None, ["train.nan_policy=ignore"])
    assert "train.nan_policy" in str(info.value) and "command-line override" in str(info.value)


def test_parse_override_scalars():
    assert parse_override("a.b=1e-3") == ("a.b", 1e-3)
    assert parse_override("a=true") == ("a", True)
    assert parse_override("a=resnet50") == ("a", "resnet50")


def test_inheritance_deep_merges_and_detects_cycles(tmp_path):
    write(tmp_path / "base.yaml", "optim:\n  lr: 0.1\n  name: sgd\nloss:\n  id: {scheme: cce}\n")
    child = write(tmp_path / "child.yaml", "defaults: [base.yaml]\noptim:\n  lr: 0.2\n")
    cfg = load_config(child)
    assert (cfg.optim.lr, cfg.optim.name, cfg.loss.id.scheme) == (0.2, "sgd", "cce")
    write(tmp_path / "a.yaml", "base: b.yaml\n")
    write(tmp_path / "b.yaml", "base: a.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(tmp_path / "a.yaml")


def test_resolved_config_round_trips(tmp_path):
    cfg = load_config(REPO_ROOT / "configs" / "default.yaml", ["optim.lr=0.002"])
    save_config(cfg, tmp_path / "config.yaml")
    again = load_config(tmp_path / "config.yaml", set_output_dir=False)
    assert again == cfg


@pytest.mark.parametrize(
    "path",
    sorted(p for p in (REPO_ROOT / "configs").rglob("*.yaml") if not p.name.startswith("study_")),
    ids=lambda p: str(p.relative_to(REPO_ROOT)),
)
def test_shipped_configs_validate(path):
    cfg = load_config(path)
    assert isinstance(cfg, Config)


def test_scheme_configs_differ_only_in_the_id_loss():
    base = load_config(REPO_ROOT / "configs" / "default.yaml", set_output_dir=False).to_plain()
    for name in ("cce", "mae", "gce", "imae", "dm", "proselflc"):
        cfg = load_config(REPO_ROOT / "configs" / "schemes" / f"{name}.yaml", set_output_dir=False)
        assert name in (cfg.loss.id.name, cfg.loss.id.scheme)  # a weighting scheme, or ProSelfLC by name
        plain = cfg.to_plain()
        for section in ("data", "model", "optim", "sched", "train", "eval"):
            assert plain[section] == base[section], (name, section)


@pytest.mark.parametrize("name", ["cce", "mae", "gce", "imae", "dm", "proselflc"])
def test_scheme_configs_build_their_losses(name):
    # a base file's params must not leak into another scheme (e.g. IMAE's T into CCE)
    from reid.engine.builders import build_id_loss, build_metric_loss

    cfg = load_config(REPO_ROOT / "configs" / "schemes" / f"{name}.yaml", set_output_dir=False)
    build_id_loss(cfg.loss.id, num_classes=10)
    assert build_metric_loss(cfg.loss.metric) is not None


def test_lr_schedule_warmup_step_cosine():
    warm_step = SchedConfig(name="step", warmup_epochs=2, warmup_factor=0.1, milestones=[4, 6], gamma=0.5)
    assert lr_factor(0.0, warm_step, 10) == pytest.approx(0.1)
    assert lr_factor(1.0, warm_step, 10) == pytest.approx(0.55)
    assert lr_factor(3.0, warm_step, 10) == pytest.approx(1.0)
    assert lr_factor(4.0, warm_step, 10) == pytest.approx(0.5)
    assert lr_factor(7.0, warm_step, 10) == pytest.approx(0.25)
    cos = SchedConfig(name="cosine", warmup_epochs=0, min_lr_factor=0.1)
    assert lr_factor(0.0, cos, 10) == pytest.approx(1.0)
    assert lr_factor(5.0, cos, 10) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 2)))
    assert lr_factor(10.0, cos, 10) == pytest.approx(0.1)


# -- strict types, YAML 1.2, defaults, run-folder names (issue 13) --------------------------------


@pytest.mark.parametrize("override, key", [
    ("train.epochs=true", "train.epochs"),       # was silently 1
    ("data.p=yes", "data.p"),                    # YAML 1.1 'yes' -> True -> 1
    ("optim.lr=true", "optim.lr"),               # lax float took True as 1.0
    ("train.deterministic=yes", "train.deterministic"),  # a string, not a YAML 1.1 boolean
    ("eval.max_frames=4.5", "eval.max_frames"),
])
def test_strict_types_reject_booleans_and_strings(override, key):
    with pytest.raises(ConfigError) as info:
        load_config(None, [override])
    message = str(info.value)
    assert key in message and "command-line override" in message
    assert len(message.splitlines()) == 1  # one problem, one line


def test_floats_accept_ints_and_tuples_accept_lists():
    cfg = load_config(None, ["optim.lr=1", "optim.betas=[0.5, 0.9]", "sched.milestones=[4, 6]"])
    assert cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float)
    assert cfg.optim.betas == (0.5, 0.9)


def test_yaml_1_2_numbers_in_files_and_overrides(tmp_path):
    # PyYAML's YAML 1.1 float rule needs a dot: '3e-1' stayed the string '3e-1' and crashed the loss
    cfg_file = write(tmp_path / "m.yaml", "loss:\n  metric:\n    params: {margin: 3e-1}\noptim:\n  lr: 1e-3\n")
    cfg = load_config(cfg_file)
    assert cfg.loss.metric.params == {"margin": 0.3} and isinstance(cfg.loss.metric.params["margin"], float)
    assert cfg.optim.lr == 1e-3
    assert parse_override("loss.id.params.T=8e0") == ("loss.id.params.T", 8.0)
    assert parse_override("a=010") == ("a", 10)             # YAML 1.2: decimal, not octal 8
    assert parse_override("a=yes") == ("a", "yes")          # YAML 1.2: a string
    assert parse_override("a=.inf")[1] == float("inf")
    assert parse_override("a=2024-01-02") == ("a", "2024-01-02")  # no implicit dates


def test_written_config_reads_back_identically_strings_that_look_like_numbers(tmp_path):
    from reid.engine.config_files import dump_yaml, load_yaml

    data = {"a": "3e-1", "b": "yes", "c": 1e-5, "d": "010", "e": None, "f": float("inf"), "g": "on"}
    assert load_yaml(dump_yaml(data)) == data
    cfg = load_config(None, ['loss.metric.params={tag: "3e-1"}'], set_output_dir=False)
    save_config(cfg, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml", set_output_dir=False).loss.metric.params == {"tag": "3e-1"}


def test_duplicate_key_names_file_and_line(tmp_path):
    cfg = write(tmp_path / "dup.yaml", "optim:\n  lr: 0.1\n  lr: 0.2\n")
    with pytest.raises(ConfigError, match=r"dup.yaml: line 3.*'lr' given twice.*line 2"):
        load_config(cfg)


def test_non_utf8_config_names_the_file_and_line(tmp_path):
    cfg = tmp_path / "latin1.yaml"
    cfg.write_bytes("name: x\noptim:\n  name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError) as info:  # was a UnicodeDecodeError traceback naming no file
        load_config(cfg)
    message = str(info.value)
    assert str(cfg) in message and "line 3" in message and "UTF-8" in message
    assert len(message.splitlines()) == 1


def test_schema_defaults_are_the_main_jobs():
    """load_config(None) trains what configs/default.yaml trains (only the run name differs)."""
    defaults = load_config(None, set_output_dir=False).to_plain()
    main_job = load_config(REPO_ROOT / "configs" / "default.yaml", set_output_dir=False).to_plain()
    assert defaults.pop("name") == "run" and main_job.pop("name") == "default"
    assert defaults == main_job


def test_default_run_folders_do_not_collide():
    """Two runs started in the same second (a backgrounded seed sweep) get different folders."""
    import re
    from datetime import datetime

    from reid.engine.config import default_output_dir

    now = datetime(2026, 12, 1, 12, 0, 0, 123456)
    assert default_output_dir("x", now) == str(Path("runs") / "x-20261201-120000-123456")
    later = now.replace(microsecond=123457)
    assert default_output_dir("x", later) != default_output_dir("x", now)
    names = {load_config(None).output_dir for _ in range(20)}
    assert len(names) == 20
    assert all(re.fullmatch(r"runs/run-\d{8}-\d{6}-\d{6}", Path(n).as_posix()) for n in names)
