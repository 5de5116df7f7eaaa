"""`neko.correct`: batched correction, truncation, the safety valve, scoring/reranking, routing
statistics, one-line errors, and `neko correct`."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest
import torch
from correct_fixtures import TASKS, make_model_dir, random_inputs, script_outputs
from typer.testing import CliRunner

import neko.correct.model_dir as model_dir
from neko.cli import _register_commands, app
from neko.correct import Correction, Corrector, SafetyValve
from neko.correct.cli import correct_command, gate_notes
from neko.correct.gate import GateRule
from neko.correct.prompts import build_prompt, decode
from neko.correct.safety import REASONS, longest_run
from neko.data.schema import Example
from neko.errors import NekoError
from neko.precision import cpu_has_bf16
from neko.tasks import _REGISTRY, get_task

FIXTURES = Path(__file__).parent / "fixtures" / "formats"


@pytest.fixture(scope="module")
def corrector(model_path) -> Corrector:
    return Corrector.from_pretrained(model_path, device="cpu")


def examples(count: int = 7) -> list[Example]:
    """Mixed tasks, N-best sizes and lengths."""
    return [
        Example(
            f"e{i}",
            TASKS[i % len(TASKS)],
            ["the cat sat on the mat " * (1 + i % 3), "the cat sad", "a cat sat"][: 1 + i % 3],
        )
        for i in range(count)
    ]


def ids_of(corrector: Corrector, text: str) -> list[int]:
    return corrector.tokenizer.encode(text, add_special_tokens=False)


# --- the degeneracy check ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "best", "finished", "reason"),
    [
        ("the cat sat on the mat", "the cat sad on the mat", True, None),
        ("hello", "hi", True, None),  # the slack lets short inputs grow a little
        ("no no no stop", "no no no stop", True, None),  # the recognizer's own repetition is kept
        ("the cat sat", "the cat sat", False, "unfinished"),
        ("", "the cat sat", True, "empty"),
        ("  \n ", "the cat sat", True, "empty"),
        ("the the the cat", "the cat", True, "looping"),
        ("sat on the mat sat on the mat sat on the mat", "sat on the mat", True, "looping"),
        ("abcdabcdabcdabcdabcd", "abcd efgh ijkl mnop qrst", True, "looping"),
        ("a cat", "the cat sat on the mat today", True, "too short"),
        ("the cat sat on the mat and then it went out to play", "the cat sat", True, "too long"),
    ],
)
def test_safety_valve_check(output, best, finished, reason):
    assert SafetyValve().check(output, best, finished) == reason


def test_safety_valve_thresholds_are_adjustable():
    long_output = "the cat sat on the mat and then it went"
    assert SafetyValve(max_ratio=10.0, max_edit_rate=None).check(long_output, "the cat") is None
    assert SafetyValve(length_slack=0).check("hello", "hi") == "too long"


def test_longest_run():
    assert longest_run("abcabcabcx", 3) == 3
    assert longest_run("xabcabc", 3) == 2
    assert longest_run(["a", "b", "a", "b"], 1) == 1
    assert longest_run([], 2) == 0


# --- correction ---------------------------------------------------------------------------------------


def test_batches_keep_input_order_and_match_unbatched(corrector):
    inputs = examples(6)
    batched = corrector.correct(inputs, batch_size=4, max_new_tokens=6, safety_valve=False, gate=False)
    single = corrector.correct(inputs, batch_size=1, max_new_tokens=6, safety_valve=False, gate=False)
    assert [c.id for c in batched] == [e.id for e in inputs]
    assert [c.task for c in batched] == [e.task for e in inputs]
    # left padding with proper positions: a row's output does not depend on its batch
    assert [c.output for c in batched] == [c.output for c in single]
    assert all(not c.fell_back and c.text == c.output for c in batched)


def test_beam_search(corrector):
    inputs = examples(3)
    corrections = corrector.correct(inputs, num_beams=3, batch_size=2, safety_valve=False)
    assert [c.id for c in corrections] == ["e0", "e1", "e2"]


def test_plain_lists_and_strings_with_task(corrector):
    corrections = corrector.correct([["the cat sad", "the cat sat"], "a cat sat"], task="asr")
    assert [(c.id, c.task) for c in corrections] == [("0", "asr"), ("1", "asr")]
    assert corrector.correct([], task="asr") == []


def test_task_argument_overrides_example_task(corrector):
    corrections = corrector.correct(examples(2), task="ocr")
    assert {c.task for c in corrections} == {"ocr"}


def test_random_model_falls_back_to_the_best_hypothesis(corrector):
    inputs = examples(4)
    corrections = corrector.correct(inputs)
    for correction, example in zip(corrections, inputs, strict=True):
        if correction.fell_back:
            assert correction.text == example.best_hypothesis and correction.reason
        else:
            assert correction.text == correction.output
    assert sum(corrector.last_fallbacks.values()) == sum(c.fell_back for c in corrections) > 0


@pytest.mark.parametrize(
    ("script", "best", "reason"),
    [
        ("", "the cat sat", "empty"),
        ("the the the the the the", "the cat", "looping"),
        ("the quick brown fox jumps over the lazy dog", "the cat", "too long"),
        ("the cat sat", "the cat sad", None),
    ],
)
@pytest.mark.parametrize("full_outputs", [True, False])
def test_safety_valve_end_to_end(corrector, script, best, reason, full_outputs):
    """Without `full_outputs`, an output the valve is sure to refuse is abandoned: only its start is
    written, and the correction is the same."""
    undo = script_outputs(corrector.model, [*ids_of(corrector, script), corrector.eos_id])
    try:
        inputs = [Example("x", "asr", [best, "the cat"]), Example("y", "tec", [best])]
        on = corrector.correct(inputs, max_new_tokens=40, gate=False, full_outputs=full_outputs)
        off = corrector.correct(inputs, max_new_tokens=40, safety_valve=False, gate=False)
    finally:
        undo()
    for correction in on:
        if full_outputs or reason is None:
            assert correction.output == script
            assert (correction.fell_back, correction.reason) == (reason is not None, reason)
        else:  # refused for what made it hopeless
            assert script.startswith(correction.output) and correction.reason in REASONS
        assert correction.text == (best if reason else script)
    assert corrector.last_fallbacks == {}
    assert all(c.text == script and not c.fell_back for c in off)


def _passes(corrector: Corrector, inputs, **options) -> tuple[list[Correction], int]:
    """The corrections of `inputs`, and how many forward passes the model made for them."""
    passes = []
    handle = corrector.model.base_model.register_forward_hook(lambda *args: passes.append(1))
    try:
        corrections = corrector.correct(inputs, **options)
    finally:
        handle.remove()
    return corrections, len(passes)


def test_a_closed_gate_does_not_run_the_model(corrector):
    inputs = examples(4)
    closed, passes = _passes(corrector, inputs, gate=GateRule.closed())
    written, written_passes = _passes(corrector, inputs, gate=GateRule.closed(), full_outputs=True)
    assert passes == 0 < written_passes
    assert [c.text for c in closed] == [c.text for c in written] == [e.best_hypothesis for e in inputs]
    assert {(c.output, c.decision, c.reason) for c in closed} == {("", "1-best", "gate closed")}


def test_an_output_sure_to_be_refused_is_abandoned_with_the_same_correction(corrector):
    """An output that has left every hypothesis behind is not written on: the same correction in
    fewer passes, its output the start of the full one."""
    script = "zebras quietly juggle purple umbrellas over frozen lakes every winter morning"
    undo = script_outputs(corrector.model, [*ids_of(corrector, script), corrector.eos_id])
    try:
        inputs = [Example("x", "asr", ["the cat sat on the mat", "the cat sat on a mat"])]
        [early], passes = _passes(corrector, inputs, gate=GateRule.open(), max_new_tokens=60)
        [full], full_passes = _passes(
            corrector, inputs, gate=GateRule.open(), max_new_tokens=60, full_outputs=True
        )
    finally:
        undo()
    assert full.output.startswith(early.output) and len(early.output) < len(full.output)
    assert passes < full_passes
    assert early.text == full.text == "the cat sat on the mat"
    assert (early.decision, early.reason) == ("1-best", "unrelated") and full.reason in REASONS


def test_output_that_never_ends_falls_back(corrector):
    undo = script_outputs(corrector.model, ids_of(corrector, " the"))
    try:
        [correction] = corrector.correct(
            [Example("x", "asr", ["the cat sat"])], max_new_tokens=5, gate=False, full_outputs=True
        )
    finally:
        undo()
    assert correction.output == "the the the the the"
    assert (correction.text, correction.reason) == ("the cat sat", "unfinished")
    assert corrector.last_fallbacks == {"unfinished": 1}


def test_instruct_prompts_read_as_english():
    st, tec = get_task("st"), get_task("tec")
    assert st.render_prompt(["hola", "ola"], "instruct").startswith("Below are 2 hypotheses of")
    assert st.render_prompt(["hola", "ola"], "instruct").endswith("\n\nCorrect Spanish translation:")
    one = tec.render_prompt(["he go home"], "instruct")
    assert (
        one.startswith("Below is the output of")
        and "It may contain errors." in one
        and "1 hypotheses" not in one
    )


def test_instruct_prompt_style(tmp_path):
    corrector = Corrector.from_pretrained(
        make_model_dir(tmp_path / "m", prompt_style="instruct", max_source_tokens=400), device="cpu"
    )
    undo = script_outputs(corrector.model, [*ids_of(corrector, " the cat sat"), corrector.eos_id])
    try:
        [correction] = corrector.correct([Example("x", "asr", ["the cat sad", "the cat"])], gate=False)
    finally:
        undo()
    assert (correction.text, correction.fell_back) == ("the cat sat", False)
    assert len(corrector.score([["the cat sad", "the cat"]], task="ocr")[0]) == 2


# --- truncation ---------------------------------------------------------------------------------------


def test_truncation_drops_worst_hypotheses_first(corrector):
    tokenizer, task = corrector.tokenizer, get_task("asr")
    hypotheses = ["the cat sat on the mat", "the cat sad on the mat", "a cat sat on a mat", "the bat"]
    full = build_prompt(tokenizer, task, hypotheses, "compact", None)
    limit = len(build_prompt(tokenizer, task, hypotheses[:2], "compact", None).ids)
    prompt = build_prompt(tokenizer, task, hypotheses, "compact", limit)
    assert (prompt.kept, prompt.total, prompt.cut, prompt.truncated) == (2, 4, False, True)
    assert len(prompt.ids) <= limit < len(full.ids)
    assert decode(tokenizer, prompt.ids) == "".join(hypotheses[:2])  # markers are skipped by decode


def test_truncation_cuts_the_best_when_it_alone_is_too_long(corrector):
    tokenizer, task = corrector.tokenizer, get_task("asr")
    best = "the quick brown fox jumps over the lazy dog " * 3
    prompt = build_prompt(tokenizer, task, [best, "the cat"], "compact", 10)
    assert prompt.cut and prompt.kept == 1 and len(prompt.ids) <= 10
    assert best.startswith(decode(tokenizer, prompt.ids))
    with pytest.raises(NekoError, match="max_source_tokens=2"):
        build_prompt(tokenizer, task, [best], "compact", 2)


def test_correct_warns_when_truncating_and_falls_back_to_the_full_best(corrector):
    long_best = "the quick brown fox jumps over the lazy dog " * 3
    inputs = [Example("long", "asr", [long_best, "the cat"]), Example("short", "asr", ["a cat"])]
    undo = script_outputs(corrector.model, [corrector.eos_id])  # an empty output: the valve rejects it
    try:
        with pytest.warns(UserWarning, match=r"1 of 2 prompts were longer than max_source_tokens=12.*'long'"):
            corrections = corrector.correct(inputs, max_source_tokens=12, gate=False)
    finally:
        undo()
    assert corrections[0].id == "long"
    assert (corrections[0].fell_back, corrections[0].reason) == (True, "empty")
    assert corrections[0].text == long_best  # the whole 1-best, not the cut one the prompt showed
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        corrector.correct(inputs[1:], max_source_tokens=12)


def test_prompt_shows_at_most_the_trained_n_best_size(tmp_path):
    corrector = Corrector.from_pretrained(make_model_dir(tmp_path / "m", max_hypotheses=2), device="cpu")
    nbest = ["the cat sat", "the cat sad", "a cat sat"]
    [item] = corrector._prepare([nbest], "asr", None)
    assert decode(corrector.tokenizer, item.prompt.ids) == "the cat satthe cat sad"
    assert len(corrector.score([nbest], task="asr")[0]) == 3  # every hypothesis is still scored


# --- scoring and reranking ----------------------------------------------------------------------------


def test_score_is_the_target_log_likelihood_and_batch_independent(corrector):
    inputs = examples(5)
    batched = corrector.score(inputs, batch_size=4)
    single = [corrector.score([example], batch_size=1)[0] for example in inputs]
    assert [len(s) for s in batched] == [len(e.hypotheses) for e in inputs]
    torch.testing.assert_close(_flat(batched), _flat(single))
    # by hand, for the second hypothesis of the last example
    example = inputs[-1]
    task = get_task(example.task)
    prompt = ids_of(corrector, task.render_prompt(example.hypotheses))
    target = ids_of(corrector, task.render_target(example.hypotheses[1]))
    with torch.no_grad():
        logits = corrector.model(input_ids=torch.tensor([prompt + target])).logits[0]
    log_probs = torch.log_softmax(logits.float(), -1)[len(prompt) - 1 : -1]
    expected = log_probs.gather(-1, torch.tensor(target)[:, None]).sum().item()
    assert batched[-1][1] == pytest.approx(expected, abs=1e-4)


def _flat(rows: list[list[float]]) -> torch.Tensor:
    return torch.tensor([value for row in rows for value in row])


@pytest.mark.parametrize("per_token", [True, False])
def test_rerank_returns_the_argmax_hypothesis(corrector, per_token):
    inputs = examples(6)
    scores = corrector.score(inputs, per_token=per_token)
    chosen = corrector.rerank(inputs, batch_size=2, per_token=per_token)
    for example, values, best in zip(inputs, scores, chosen, strict=True):
        assert best in example.hypotheses
        assert best == example.hypotheses[max(range(len(values)), key=values.__getitem__)]


def test_per_token_scores_are_means_over_the_target_tokens(corrector):
    [example] = examples(3)[2:]
    sums, means = corrector.score([example])[0], corrector.score([example], per_token=True)[0]
    task = get_task(example.task)
    for hypothesis, total, mean in zip(example.hypotheses, sums, means, strict=True):
        assert mean == pytest.approx(total / len(ids_of(corrector, task.render_target(hypothesis))))


# --- routing statistics -------------------------------------------------------------------------------


def test_routing_stats_shape_and_counts(corrector):
    inputs = [e for e in examples(6) if e.task in ("asr", "ocr")]
    stats = corrector.routing_stats(inputs, batch_size=2)
    tasks = corrector.info.assignment.tasks
    assert stats.tasks == tasks
    assert stats.counts.shape == (len(tasks), 2, 4)
    # every routed token picks top-2 experts; only the tasks present have tokens
    assert torch.equal(stats.counts.sum(-1), stats.tokens * 2)
    present = {tasks.index("asr"), tasks.index("ocr")}
    for i in range(len(tasks)):
        assert (stats.tokens[i] > 0).all() if i in present else (stats.tokens[i] == 0).all()
    # given outputs: prompt + target tokens of each input, padding excluded
    outputs = ["the cat", Correction("x", "ocr", "a", output="the cat sat")] + ["x"] * (len(inputs) - 2)
    stats = corrector.routing_stats(inputs, outputs=outputs)
    expected = sum(
        len(
            ids_of(
                corrector, get_task(e.task).render_prompt(e.hypotheses) + get_task(e.task).render_target(o)
            )
        )
        for e, o in zip(inputs, ["the cat", "the cat sat"] + ["x"] * (len(inputs) - 2), strict=True)
    )
    assert int(stats.tokens[:, 0].sum()) == expected


def test_routing_stats_count_full_outputs_whatever_the_correct_options(corrector):
    inputs = [e for e in examples(6) if e.task in ("asr", "ocr")]
    default = corrector.routing_stats(inputs, batch_size=2)
    asked = corrector.routing_stats(inputs, batch_size=2, full_outputs=False, gate=False)
    assert torch.equal(default.counts, asked.counts)


def test_routing_stats_of_a_dense_model_is_a_clear_error(tmp_path):
    corrector = Corrector.from_pretrained(make_model_dir(tmp_path / "dense", dense=True), device="cpu")
    assert len(corrector.correct([["the cat"]], task="asr")) == 1
    with pytest.raises(NekoError, match="dense model"):
        corrector.routing_stats([["the cat"]], task="asr")


# --- loading and one-line errors ----------------------------------------------------------------------


def test_unknown_task_lists_known_tasks(corrector):
    with pytest.raises(NekoError, match="unknown task 'pos'; known tasks: asr, st, mt, ocr, tec"):
        corrector.correct([["the cat"]], task="pos")
    with pytest.raises(NekoError, match="unknown task 'pos'"):
        corrector.correct([Example("a", "pos", ["the cat"])])


def test_task_the_model_was_not_trained_for(tmp_path):
    corrector = Corrector.from_pretrained(make_model_dir(tmp_path / "m", tasks=("asr",)), device="cpu")
    with pytest.raises(NekoError, match="not trained for task 'ocr'; its tasks: asr"):
        corrector.correct([["the cat"]], task="ocr")


def test_example_without_hypotheses(corrector):
    with pytest.raises(NekoError, match="example 'a' has no hypotheses"):
        corrector.correct([Example("a", "asr", [])])
    with pytest.raises(NekoError, match="need task="):
        corrector.correct([["the cat"]])


@pytest.mark.parametrize("missing", ["neko.json", "config.json", "tokenizer.json", "model.safetensors"])
def test_model_directory_missing_a_file(model_path, tmp_path, missing):
    broken = Path(shutil.copytree(model_path, tmp_path / "broken"))
    (broken / missing).unlink()
    with pytest.raises(NekoError, match=f"missing {missing}"):
        Corrector.from_pretrained(broken)


def test_missing_default_model(monkeypatch, tmp_path):
    monkeypatch.setattr(model_dir, "DEFAULT_MODEL_DIR", tmp_path / "models" / "neko-tiny")
    with pytest.raises(NekoError, match=r"default model is not installed.*--model"):
        Corrector.from_pretrained()
    with pytest.raises(NekoError, match="no such model directory"):
        Corrector.from_pretrained(tmp_path / "nowhere")


def test_custom_tasks_are_registered_on_load(tmp_path):
    spec = {
        "name": "handwriting",
        "description": "a handwriting recognizer",
        "output": "text",
        "metric": "cer",
    }
    try:
        path = make_model_dir(tmp_path / "m", tasks=("asr",), custom_tasks=[spec])
        _REGISTRY.pop("handwriting", None)
        corrector = Corrector.from_pretrained(path, device="cpu")
        assert get_task("handwriting").metric == "cer"
        assert corrector.tasks == ["asr"]
    finally:
        _REGISTRY.pop("handwriting", None)


def test_bad_neko_json_is_one_line(model_path, tmp_path):
    broken = Path(shutil.copytree(model_path, tmp_path / "broken"))
    info = json.loads((broken / "neko.json").read_text())
    (broken / "neko.json").write_text(json.dumps(info | {"prompt_style": "chatty"}))
    with pytest.raises(NekoError, match="prompt_style: must be one of 'compact' or 'instruct', got 'chatty'"):
        Corrector.from_pretrained(broken)


NEKO_JSON = {
    "format": 1,
    "tasks": ["asr", "ocr"],
    "assignment": {"num_experts": 4, "task_to_expert": {"asr": 3, "ocr": 0}},
    "max_edit_rate": {"asr": 0.2},
    "gate": {"ocr": {"accept_margin": 0.5}},
}
HANDWRITING = {"name": "handwriting", "description": "a handwriting recognizer", "output": "text"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format": 2}, "format: must be one of 1, got 2"),
        ({"format": None}, "format: must be one of 1, got None"),
        ({"tasks": []}, "tasks: must have at least 1 item(s)"),
        ({"tasks": "asr"}, "tasks: must be a list, got 'asr'"),
        ({"tasks": ["asr", "nope"]}, "tasks: unknown task 'nope'; known tasks: asr, st, mt, ocr, tec"),
        ({"tasks": ["asr", "ocr", "asr"]}, "tasks: lists asr more than once"),
        ({"assignment": {"num_experts": 4}}, "assignment.task_to_expert: is required"),
        (
            {"assignment": {"num_experts": "4", "task_to_expert": {}}},
            "assignment.num_experts: must be an integer, got '4'",
        ),
        (
            {"assignment": {"num_experts": 4, "task_to_expert": {"asr": 9}}},
            "assignment: task 'asr' mapped to expert 9, outside 0..3",
        ),
        (
            {"strategy": "sparse"},
            "strategy: must be one of 'task_guided', 'moe', 'damex' or 'dense', got 'sparse'",
        ),
        ({"prompt_style": 1}, "prompt_style: must be one of 'compact' or 'instruct', got 1"),
        ({"max_source_tokens": 0}, "max_source_tokens: must be >= 1"),
        ({"max_new_tokens": "128"}, "max_new_tokens: must be an integer, got '128'"),
        ({"max_hypotheses": 2.0}, "max_hypotheses: must be an integer, got 2.0"),
        (
            {"max_edit_rate": {"tec": 0.1}},
            "max_edit_rate: names 'tec', which is not one of the model's tasks",
        ),
        ({"max_edit_rate": {"asr": True}}, "max_edit_rate.asr: must be a number, got True"),
        ({"gate": []}, "gate: must be a mapping, got []"),
        ({"custom_tasks": [HANDWRITING]}, "custom_tasks[0].metric: is required"),
        (
            {"custom_tasks": [HANDWRITING | {"metric": "cer", "font": "x"}]},
            "custom_tasks[0]: unknown key 'font'",
        ),
        (
            {"custom_tasks": [HANDWRITING | {"metric": "cer", "name": "1x"}]},
            "custom_tasks: task name '1x' must be",
        ),
        ({"margin": 0.1}, "top level: unknown key 'margin' (known: assignment, custom_tasks, format, gate, "),
    ],
)
def test_each_bad_neko_json_setting_is_one_line_naming_the_key(tmp_path, change, message):
    (tmp_path / "neko.json").write_text(json.dumps(NEKO_JSON | change))
    with pytest.raises(NekoError) as error:
        model_dir.read_model_info(tmp_path)
    assert str(error.value).startswith(f"{tmp_path / 'neko.json'}: {message}")
    assert "\n" not in str(error.value)


def test_a_model_info_built_in_code_is_checked_as_neko_json_is():
    with pytest.raises(NekoError, match=r"^ModelInfo: max_new_tokens: must be >= 1$"):
        model_dir.ModelInfo(tasks=["asr"], max_new_tokens=0)
    with pytest.raises(NekoError, match=r"^ModelInfo: tasks: lists asr more than once$"):
        model_dir.ModelInfo(tasks=["asr", "asr"])
    assert model_dir.ModelInfo(tasks=["asr"]).tasks == ["asr"]


def test_neko_json_custom_tasks_are_registered_before_the_tasks_that_name_them(tmp_path):
    handwriting = HANDWRITING | {"metric": "cer"}
    data = NEKO_JSON | {"tasks": ["asr", "handwriting"], "custom_tasks": [handwriting], "gate": {}}
    data["assignment"] = {"num_experts": 4, "task_to_expert": {"asr": 3, "handwriting": 1}}
    try:
        info = model_dir.ModelInfo.from_dict(data)
        assert info.assignment.expert_of("handwriting") == 1 and get_task("handwriting").metric == "cer"
        assert info.to_dict()["custom_tasks"] == [handwriting | {"language": "en"}]
    finally:
        _REGISTRY.pop("handwriting", None)


def test_the_shipped_neko_json_is_written_back_byte_for_byte(tmp_path):
    shipped = model_dir.DEFAULT_MODEL_DIR
    model_dir.write_model_info(tmp_path, model_dir.read_model_info(shipped))
    assert (tmp_path / "neko.json").read_bytes() == (shipped / "neko.json").read_bytes()


# --- the command --------------------------------------------------------------------------------------


@pytest.fixture
def cli():
    """`neko correct` registered on the app for the test only (the lead wires it in `neko.cli`)."""
    if not any(group.name == "data" for group in app.registered_groups):
        _register_commands()  # as `main` does; with one command only, typer would drop the name
    registered = any(command.name == "correct" for command in app.registered_commands)
    if not registered:
        app.command("correct")(correct_command)
    yield CliRunner()
    if not registered:
        app.registered_commands[:] = [c for c in app.registered_commands if c.name != "correct"]


def test_cli_jsonl_file(cli, model_path):
    result = cli.invoke(app, ["correct", str(FIXTURES / "native.jsonl"), "--model", str(model_path)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["id"] for line in lines] == ["ocr-1", "st-1", "tec-1"]
    assert all(set(line) >= {"id", "correction", "fell_back"} for line in lines)
    assert "corrected 3 examples" in result.stderr and "fell back to the 1-best" in result.stderr


def test_cli_stdin_text_to_file(cli, model_path, tmp_path):
    out = tmp_path / "out" / "corrected.txt"
    args = ["correct", "-", "--model", str(model_path), "--task", "asr", "--output-format", "text"]
    args += ["--out", str(out), "--beams", "2", "--batch-size", "1", "--max-new-tokens", "4"]
    result = cli.invoke(app, [*args, "--no-safety-valve", "--no-gate"], input="the cat sad\n\na cat sat\n")
    assert result.exit_code == 0, result.output
    lines = out.read_text().split("\n")
    assert len(lines) == 4 and lines[1] == "" and lines[3] == ""  # the blank line keeps its place
    assert result.stdout == ""
    assert "corrected 2 examples" in result.stderr and "0 fell back" in result.stderr
    result = cli.invoke(app, args, input="the cat sad\n")
    assert (
        "corrected 1 examples" in result.stderr
        and "1 fell back to the 1-best (gate closed: 1)" in result.stderr
    )
    assert out.read_text() == "the cat sad\n"
    assert [p.name for p in out.parent.iterdir()] == ["corrected.txt"]  # no temporary left behind
    assert "note: the gate of asr is not tuned" in result.stderr


def test_cli_dtype_runs_the_model_in_it(cli, model_path, monkeypatch):
    from neko.correct import torch_lm

    real, loaded = torch_lm.load_model, []

    def recording(*args, **kwargs):
        model = real(*args, **kwargs)
        loaded.append(next(model.parameters()).dtype)
        return model

    monkeypatch.setattr(torch_lm, "load_model", recording)
    args = ["correct", "-", "--model", str(model_path), "--task", "asr", "--no-gate", "--max-new-tokens", "4"]
    result = cli.invoke(app, [*args, "--dtype", "bfloat16"], input="the cat sad\na cat sat\n")
    assert result.exit_code == 0, result.output
    assert loaded == [torch.bfloat16]
    assert "corrected 2 examples" in result.stderr
    assert ("bfloat16 is emulated" in result.stderr) is not cpu_has_bf16()


def test_an_input_written_like_a_marker_is_refused_before_the_model_runs(model_path):
    corrector = Corrector.from_pretrained(model_path)
    with pytest.raises(NekoError, match=r"input 1: hypothesis 0: holds '<\|hyp\|>', written like one of"):
        corrector.correct([["fine"], ["a <|hyp|> b"]], task="asr")


def test_cli_says_when_bfloat16_is_emulated_on_this_cpu(cli, model_path, monkeypatch):
    monkeypatch.setattr("neko.precision.cpu_has_bf16", lambda: False)
    args = ["correct", "-", "--model", str(model_path), "--task", "asr", "--no-gate", "--max-new-tokens", "4"]
    result = cli.invoke(app, [*args, "--dtype", "bfloat16"], input="the cat sad\n")
    assert result.exit_code == 0, result.output
    assert "--dtype bfloat16: this CPU has no bfloat16 instructions" in result.stderr
    result = cli.invoke(app, args, input="the cat sad\n")
    assert "bfloat16" not in result.stderr


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--dtype", "int8"], "unknown dtype 'int8'; expected one of auto, float32, bfloat16, float16"),
        (
            ["--dtype", "bfloat16", "--engine", "onnx"],
            "the onnx engine runs its float32 export; --dtype bfloat16 needs --engine copy",
        ),
    ],
)
def test_cli_refuses_a_dtype_it_cannot_use_before_loading(cli, model_path, options, message):
    args = ["correct", "-", "--model", str(model_path), "--task", "asr", *options]
    result = cli.invoke(app, args, input="x\n")
    assert isinstance(result.exception, NekoError) and str(result.exception) == message


def test_a_gate_tuned_closed_is_not_called_untuned():
    [tuned_closed, untuned] = gate_notes(["asr", "tec"], {"tec": GateRule.closed()})
    assert tuned_closed.startswith("note: the gate of tec was tuned closed (no setting gained on its dev")
    assert untuned.startswith("note: the gate of asr is not tuned")
    assert gate_notes([], {}) == []


def test_cli_errors_are_one_line(cli, model_path, tmp_path):
    result = cli.invoke(app, ["correct", "-", "--model", str(model_path)], input="the cat\n")
    assert isinstance(result.exception, NekoError) and "pass --task" in str(result.exception)
    result = cli.invoke(
        app, ["correct", "-", "--model", str(tmp_path / "none"), "--task", "asr"], input="x\n"
    )
    assert isinstance(result.exception, NekoError) and "no such model directory" in str(result.exception)
    args = ["correct", str(FIXTURES / "native.jsonl"), "--model", str(model_path), "--output-format", "csv"]
    result = cli.invoke(app, args)
    assert isinstance(result.exception, NekoError) and "unknown output format 'csv'" in str(result.exception)


def test_safety_valve_falls_back_on_outputs_unrelated_to_every_hypothesis():
    valve = SafetyValve()
    hypotheses = ["two men in blue shirts play ball", "two men in blue shirt play a ball"]
    # 1 character edit from the second hypothesis: kept.
    assert not valve.unrelated("two men in blue shirts play a ball", hypotheses)
    assert valve.check("two men in blue shirts play a ball", hypotheses[0], True, hypotheses) is None
    fluent_but_unrelated = "a man in a white shirt is on the ground"
    assert valve.check(fluent_but_unrelated, hypotheses[0], True, hypotheses) == "unrelated"
    lenient = SafetyValve(max_edit_rate=None)
    assert lenient.check(fluent_but_unrelated, hypotheses[0], True, hypotheses) is None


@pytest.mark.parametrize(
    "rule",
    [
        GateRule.closed(),
        GateRule(accept_margin=0.0, min_familiarity=-50.0, require_support=False),
        GateRule(accept_margin=0.0, min_familiarity=-3.0, require_support=True),
        GateRule(accept_margin=0.5, rerank_margin=0.0, require_support=False),
        GateRule(accept_margin=0.0, rerank_margin=0.3, min_familiarity=-50.0, require_support=False),
        GateRule(rerank_margin=-1.0),
        GateRule.open(),
    ],
    ids=["closed", "accept", "accept-if-supported", "accept-and-rerank", "rerank-some", "rerank", "open"],
)
def test_scoring_only_what_the_rule_needs_gives_the_same_corrections(tmp_path_factory, rule):
    """Without `evidence` the gate scores fewer texts (nothing for a closed gate, an unchanged output
    or an unsupported edit that needs support, the 1-best alone beside the output when it never
    reranks) and decides alike."""
    examples = random_inputs(24, seed=11)
    path = make_model_dir(tmp_path_factory.mktemp("gate-needs") / "m", max_new_tokens=16)
    corrector = Corrector.from_pretrained(path, device="cpu")
    # no safety valve: a random model's outputs are degenerate, and the gate should see them
    full, fast = (
        corrector.correct(examples, batch_size=8, safety_valve=False, gate=rule, evidence=evidence)
        for evidence in (True, False)
    )
    assert [(c.text, c.decision, c.reason) for c in fast] == [(c.text, c.decision, c.reason) for c in full]
    assert all(c.evidence is None for c in fast) and all(c.evidence is not None for c in full)


def test_the_hypotheses_are_scored_only_where_the_1_best_is_unlikely_enough_to_be_reranked(
    tmp_path, monkeypatch
):
    """A rerank needs a hypothesis whose mean token log-probability beats the 1-best's by the margin;
    none exceeds 0, so where the 1-best's is above -margin only the output and the 1-best are scored."""
    examples = random_inputs(24, seed=11)
    corrector = Corrector.from_pretrained(make_model_dir(tmp_path / "m", max_new_tokens=16), device="cpu")
    full = corrector.correct(examples, batch_size=8, safety_valve=False, gate=GateRule.open(), evidence=True)
    best_means = sorted(c.evidence.confidence - c.evidence.margin for c in full if c.decision != "unchanged")
    margin = -best_means[len(best_means) // 2]  # half of the 1-bests are too likely to be reranked
    rule = GateRule(rerank_margin=margin, require_support=False)
    scored: list[list[str]] = []
    real_score_texts = corrector._score_texts

    def recording(items, texts, *args, **kwargs):
        scored.extend(texts)
        return real_score_texts(items, texts, *args, **kwargs)

    monkeypatch.setattr(corrector, "_score_texts", recording)
    fast = corrector.correct(examples, batch_size=8, safety_valve=False, gate=rule)
    monkeypatch.undo()
    slow = corrector.correct(examples, batch_size=8, safety_valve=False, gate=rule, evidence=True)
    assert [(c.text, c.decision, c.reason) for c in fast] == [(c.text, c.decision, c.reason) for c in slow]
    changed = [c for c in slow if c.decision != "unchanged"]
    rescored = [texts for texts in scored if len(texts) > 1]
    assert sum(len(texts) == 1 for texts in scored) == len(changed)  # every changed input: its 1-best first
    assert 0 < len(rescored) < len(changed)  # then every hypothesis only where a rerank is possible


@pytest.mark.parametrize("engine", ["copy", "transformers"])
def test_an_output_is_written_in_its_inputs_tokenization(corrector, engine):
    """The model writes plain text; a tokenized input ("car .", "do n't") gets its output in the
    same tokenization, so what it copies equals the input and what it fixes is spaced alike."""
    corrector.engine = engine
    undo = script_outputs(corrector.model, [*ids_of(corrector, "I don't like cars."), corrector.eos_id])
    try:
        tokenized, plain = corrector.correct(
            [Example("x", "tec", ["I do n't like car ."]), Example("y", "tec", ["I don't like car."])],
            gate=False,
            max_new_tokens=40,
        )
    finally:
        undo()
        corrector.engine = "auto"
    assert tokenized.output == tokenized.text == "I do n't like cars ."
    assert plain.output == plain.text == "I don't like cars."
