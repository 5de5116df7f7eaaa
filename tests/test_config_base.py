"""Staged configs: `base:` names the config a stage changes; sections merge, other values replace."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from neko.errors import NekoError
from neko.train.config import load_config, read_raw

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_a_stage_changes_only_what_it_names(tmp_path):
    (tmp_path / "base.yaml").write_text(
        yaml.safe_dump({"tasks": ["asr"], "optim": {"lr": 0.001, "epochs": 2}, "data": {"train": ["a"]}})
    )
    (tmp_path / "stage.yaml").write_text("base: base.yaml\noptim: {lr: 0.0005}\ndata: {train: [b, c]}\n")
    assert read_raw(tmp_path / "stage.yaml") == {
        "tasks": ["asr"],
        "optim": {"lr": 0.0005, "epochs": 2},  # sections merge
        "data": {"train": ["b", "c"]},  # lists replace
    }


def test_bad_bases_are_one_line_errors(tmp_path):
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(NekoError, match="include it again"):
        read_raw(tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("base: missing.yaml\n")
    with pytest.raises(NekoError, match=r"missing\.yaml: no such config file \(the base of .*c\.yaml\)"):
        read_raw(tmp_path / "c.yaml")
    (tmp_path / "d.yaml").write_text("base: [a.yaml]\n")
    with pytest.raises(NekoError, match="base: expected the file name"):
        read_raw(tmp_path / "d.yaml")


def test_the_staged_neko_tiny_configs_build_on_each_other():
    stage5 = load_config(
        CONFIGS / "neko-tiny-stage5.yaml", {"model.path": str(CONFIGS.parent / "models/neko-tiny")}
    )
    assert (stage5.optim.lr, stage5.optim.max_steps, stage5.run.seed) == (5e-4, 900, 3)
    assert stage5.optim.betas == (0.9, 0.95) and stage5.data.mixture == "balanced"  # from stage 2
    assert read_raw(CONFIGS / "neko-tiny-stage7.yaml")["data"]["mixture"] == "proportional"  # stage 6's
