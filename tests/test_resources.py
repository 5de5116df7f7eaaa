"""The default model and the demo examples: an explicit path, then $NEKO_HOME, then the checkout."""

from __future__ import annotations

import re

import pytest

import neko.correct.model_dir as model_dir
from neko.errors import NekoError
from neko.resources import CHECKOUT, DEFAULT_MODEL_NAME, DEMO_EXAMPLES, HOME_VARIABLE, candidates, locate


def test_neko_home_comes_before_the_checkout(monkeypatch, tmp_path):
    (tmp_path / "models" / DEFAULT_MODEL_NAME).mkdir(parents=True)
    (tmp_path / "examples").mkdir()
    (tmp_path / "examples" / "demo.jsonl").write_text("")
    monkeypatch.setenv(HOME_VARIABLE, str(tmp_path))
    assert model_dir.resolve_model_dir(None) == tmp_path / "models" / DEFAULT_MODEL_NAME
    assert locate(DEMO_EXAMPLES, "missing", "hint") == tmp_path / "examples" / "demo.jsonl"
    explicit = tmp_path / "mine"
    explicit.mkdir()
    assert model_dir.resolve_model_dir(explicit) == explicit


def test_without_neko_home_the_checkout_is_used(monkeypatch):
    monkeypatch.delenv(HOME_VARIABLE, raising=False)
    assert candidates(DEMO_EXAMPLES) == [CHECKOUT / DEMO_EXAMPLES]
    assert locate(DEMO_EXAMPLES, "missing", "hint") == CHECKOUT / "examples" / "demo.jsonl"


def test_a_missing_default_model_names_every_place_looked_in(monkeypatch, tmp_path):
    monkeypatch.setenv(HOME_VARIABLE, str(tmp_path / "home"))
    monkeypatch.setattr(model_dir, "DEFAULT_MODEL_DIR", tmp_path / "checkout" / "models" / DEFAULT_MODEL_NAME)
    with pytest.raises(NekoError) as caught:
        model_dir.resolve_model_dir(None)
    message = str(caught.value)
    assert "\n" not in message
    looked = rf"default model is not installed \(looked in .*home/models/{DEFAULT_MODEL_NAME}, .*checkout"
    assert re.search(looked, message)
    assert f"set $NEKO_HOME to a folder holding models/{DEFAULT_MODEL_NAME}, or train one" in message


def test_a_bundled_model_is_found_by_name_and_default_names_the_default(monkeypatch, tmp_path):
    for name in (DEFAULT_MODEL_NAME, "other"):
        (tmp_path / "models" / name).mkdir(parents=True)
    monkeypatch.setenv(HOME_VARIABLE, str(tmp_path))
    (tmp_path / "cwd" / "mine").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "cwd")  # a path wins over a bundled model's name
    assert model_dir.resolve_model_dir("other") == tmp_path / "models" / "other"
    assert model_dir.resolve_model_dir("default") == tmp_path / "models" / DEFAULT_MODEL_NAME
    assert model_dir.resolve_model_dir("mine") == model_dir.Path("mine")


@pytest.mark.parametrize("model", ["absent", "some/absent", "a-file"])
def test_an_unknown_model_is_one_line_naming_it(monkeypatch, tmp_path, model):
    monkeypatch.setenv(HOME_VARIABLE, str(tmp_path))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    (tmp_path / "a-file").write_text("")
    with pytest.raises(NekoError) as caught:
        model_dir.resolve_model_dir(model)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{model}: ")
