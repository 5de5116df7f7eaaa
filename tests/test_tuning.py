"""The correction gate: its decision rule on hand-built cases, its evidence from a real model, tuning on
dev data (never test files), and its settings in neko.json (`neko tune-gate`)."""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace

import numpy as np
import pytest
from correct_fixtures import make_model_dir, script_outputs
from typer.testing import CliRunner

from neko.cli import _register_commands, app
from neko.correct import Corrector
from neko.correct.cli import refuse_test_file
from neko.correct.gate import Evidence, GateRule, choose, supported
from neko.correct.model_dir import read_model_info
from neko.correct.tuning import (
    MIN_DATASET,
    Row,
    _BleuStats,
    read_rows,
    save_gate_settings,
    tune_gate,
    tune_task,
    write_rows,
)
from neko.data.jsonl import write_jsonl
from neko.data.schema import Example
from neko.errors import NekoError
from neko.evaluate.metrics import Scorer, bleu

RULE = GateRule(accept_margin=0.2, rerank_margin=0.3, min_familiarity=-5.0, require_support=True)


def evidence(**changes) -> Evidence:
    """A confident, supported fix of a familiar input; `changes` spoil it."""
    base = Evidence(
        output="show flights to boston",
        best="show flights to austin",
        pick="show flights to boston",
        margin=0.8,
        rerank_margin=0.6,
        familiarity=-2.0,
        supported=True,
        confidence=-0.1,
    )
    return replace(base, **changes)


# --- the decision rule --------------------------------------------------------------------------------


def test_a_confident_supported_fix_of_a_familiar_input_is_accepted():
    assert RULE.decide(evidence()) == ("model", None)


def test_an_unsupported_rewrite_is_refused_and_the_rerank_taken_when_it_is_sure():
    rewrite = evidence(output="show me every flight into boston", supported=False)
    assert RULE.decide(rewrite) == ("rerank", "unsupported edit")
    assert RULE.decide(replace(rewrite, rerank_margin=0.1)) == ("1-best", "unsupported edit")


def test_an_out_of_domain_input_is_left_alone():
    unfamiliar = evidence(familiarity=-7.5)
    assert RULE.decide(unfamiliar) == ("1-best", "unfamiliar input")  # no rerank either


def test_a_small_margin_keeps_the_1_best_and_an_unchanged_output_is_unchanged():
    assert RULE.decide(evidence(margin=0.1)) == ("rerank", "low margin")
    assert RULE.decide(evidence(margin=math.nan))[1] == "low margin"  # as tuning's replay counts it
    assert RULE.decide(evidence(output="show flights to austin")) == ("unchanged", None)


def test_an_output_the_model_is_unsure_of_keeps_the_1_best_whatever_its_margin():
    """A garbled 1-best makes any fluent output look better (a wide margin); the confidence asks
    how sure the model is of the output itself."""
    sure = replace(RULE, min_confidence=-0.2)
    assert sure.decide(evidence(confidence=-0.1)) == ("model", None)
    assert sure.decide(evidence(confidence=-1.5, margin=3.0)) == ("rerank", "low confidence")
    assert sure.decide(evidence(confidence=math.nan))[1] == "low confidence"  # not scored: refused
    assert RULE.decide(evidence(confidence=-1.5)) == ("model", None)  # no threshold, no check


def test_a_degenerate_output_never_passes_and_an_untuned_gate_keeps_the_1_best():
    assert RULE.decide(evidence(valve_reason="looping"))[1] == "looping"
    assert GateRule.closed().decide(evidence()) == ("1-best", "gate closed")
    assert GateRule.open().decide(evidence(margin=-3.0, supported=False, familiarity=-50.0))[0] == "model"


def test_a_rerank_is_only_possible_where_the_1_best_is_unlikely_enough_for_a_hypothesis_to_beat_it():
    """No hypothesis's mean token log-probability exceeds 0: with the 1-best's above -rerank_margin,
    scoring the other hypotheses cannot change the decision."""
    refused = evidence(margin=0.1, pick="show flights to austin", rerank_margin=math.nan)  # low margin
    assert RULE.may_rerank(refused, best_score=-0.5)  # a hypothesis at -0.2 or above would win
    assert not RULE.may_rerank(refused, best_score=-0.2)  # one would need more than 0
    assert RULE.may_rerank(refused, best_score=-0.3 + 1e-6)  # rounding room at the bound
    assert not RULE.may_rerank(evidence(), best_score=-3.0)  # the output is taken: no rerank
    assert not RULE.may_rerank(replace(refused, familiarity=-7.5), best_score=-3.0)  # unfamiliar
    assert not replace(RULE, rerank_margin=None).may_rerank(refused, best_score=-3.0)
    assert RULE.may_rerank(replace(refused, valve_reason="looping"), best_score=-3.0)


def test_choose_returns_the_text_of_each_decision():
    found = evidence(pick="show flights to bosten")
    assert [choose(found, d) for d in ("model", "unchanged", "rerank", "1-best")] == [
        "show flights to boston",
        "show flights to boston",
        "show flights to bosten",
        "show flights to austin",
    ]


def test_support_needs_the_changed_span_with_its_context_in_another_hypothesis():
    hypotheses = ["i want to fly to austin today", "i want to fly to boston today"]
    assert supported("i want to fly to boston today", hypotheses)
    assert not supported("i want to fly to dallas today", hypotheses)
    assert not supported("i want to go to boston today", hypotheses)  # "go to" in no hypothesis
    assert supported("i want to fly to austin today", hypotheses)  # no change at all
    assert supported("want to fly to boston today", ["i want to fly to boston today", "want to fly"])


# --- tuning -------------------------------------------------------------------------------------------


def rows(task, cases):
    """Rows from (dataset, hypotheses, reference, output, margin, familiarity, supported[, confidence])."""
    made = []
    for i, (
        dataset,
        hypotheses,
        reference,
        output,
        margin,
        familiarity,
        is_supported,
        *confidence,
    ) in enumerate(cases):
        example = Example(f"e{i}", task, hypotheses, reference=reference, dataset=dataset)
        found = Evidence(
            output,
            hypotheses[0],
            hypotheses[0],
            margin,
            0.0,
            familiarity,
            is_supported,
            *(confidence or [0.0]),
        )
        made.append(Row(example, found, 0.0))
    return made


def test_tuning_leaves_alone_the_outputs_the_model_is_unsure_of():
    """Two domains equally familiar, their outputs as far ahead of the 1-best: only the model's
    confidence tells the sure fixes (captions) from the harmful rewrites (bible). Tuned with either
    domain held out, the stricter confidence threshold is kept, so the held-out one is not harmed."""
    fix = ("captions", ["a dog run", "a dog runs"], "a dog runs", "a dog runs", 0.9, -2.0, False, -0.05)
    harm = ("bible", ["and god said", "and god sad"], "and god said", "and dog said", 0.9, -2.0, False, -1.0)
    tuning = tune_task("asr", rows("asr", [fix] * MIN_DATASET + [harm] * MIN_DATASET), Scorer(errant=False))
    assert tuning.caution == "as tuned" and tuning.best.rule.min_confidence is not None
    assert tuning.best.per_dataset["captions"] == 0.0
    assert tuning.best.per_dataset["bible"] == tuning.one_best_per_dataset["bible"]


def test_tuning_takes_the_confident_fixes_and_refuses_the_unfamiliar_domain():
    good = ("captions", ["a dog runs", "a dog run"], "a dog runs", "a dog runs", 0.9, -2.0, True)
    fix = ("captions", ["a dog run", "a dog runs"], "a dog runs", "a dog runs", 0.9, -2.0, True)
    harm = (
        "atis",
        ["flights to boston", "flight to boston"],
        "flights to boston",
        "a dog to boston",
        0.9,
        -6.0,
        True,
    )
    cases = [fix] * MIN_DATASET + [good] * MIN_DATASET + [harm] * MIN_DATASET
    tuning = tune_task("asr", rows("asr", cases), Scorer(errant=False))
    assert tuning.one_best_per_dataset["captions"] > 0 and tuning.best.per_dataset["captions"] == 0.0
    assert tuning.best.per_dataset["atis"] == tuning.one_best_per_dataset["atis"]  # no harm there
    assert tuning.best.rule.min_familiarity is not None and tuning.best.rule.min_familiarity > -6.0
    assert tuning.best.taken == {"model": MIN_DATASET, "1-best": 2 * MIN_DATASET}
    assert tuning.risk_coverage[0][1] == tuning.one_best


def test_tuning_never_lets_a_dev_dataset_get_worse_even_for_a_larger_total_gain():
    fix = ("captions", ["a dog run"], "a dog runs", "a dog runs", 0.9, -2.0, True)
    harm = ("handbook", ["install the package"], "install the package", "install a package", 0.9, -2.0, True)
    tuning = tune_task(
        "asr", rows("asr", [fix] * (2 * MIN_DATASET) + [harm] * MIN_DATASET), Scorer(errant=False)
    )
    assert tuning.best.taken == {"1-best": 3 * MIN_DATASET}  # the signals cannot tell them apart
    assert tuning.best.score == tuning.one_best


def test_test_files_are_refused_for_tuning(tmp_path):
    for name in ("test.jsonl.gz", "hyporadise-test.jsonl.gz", "test_atis.json", "my_test.txt"):
        with pytest.raises(NekoError, match="test file"):
            refuse_test_file(tmp_path / name)
    for name in ("dev.jsonl.gz", "hyporadise-dev.jsonl.gz", "jfleg.jsonl.gz", "contest.json"):
        refuse_test_file(tmp_path / name)


# --- a real (tiny) model ------------------------------------------------------------------------------

SCRIPT = "the cat sat"


@pytest.fixture
def scripted(tmp_path):
    """A corrector whose every output is SCRIPT, and its model directory."""
    path = make_model_dir(tmp_path / "model")
    corrector = Corrector.from_pretrained(path, device="cpu")
    ids = corrector.tokenizer.encode(SCRIPT, add_special_tokens=False)
    undo = script_outputs(corrector.model, [*ids, corrector.eos_id])
    yield corrector, path
    undo()


def test_the_evidence_comes_from_the_model(scripted):
    corrector, _ = scripted
    hypotheses = ["the cat sad", "the cat sat", "a cat sat"]
    [correction] = corrector.correct([Example("x", "asr", hypotheses)], gate=GateRule.open(), evidence=True)
    found = correction.evidence
    scores = corrector.score([hypotheses], task="asr", per_token=True)[0]
    output_score = corrector.score([[SCRIPT]], task="asr", per_token=True)[0][0]
    assert found.output == SCRIPT and found.best == hypotheses[0] and found.supported
    assert found.margin == pytest.approx(output_score - scores[0], rel=1e-4)
    assert found.pick == hypotheses[max(range(3), key=lambda k: (scores[k], -k))]
    assert math.isfinite(found.familiarity) and found.familiarity < 0
    assert (correction.decision, correction.text) == ("model", SCRIPT)
    with pytest.raises(NekoError, match="evidence is what the gate decides on: it needs a gate"):
        corrector.correct([Example("x", "asr", hypotheses)], gate=False, evidence=True)


def test_the_tuned_gate_is_saved_and_used_per_task(scripted):
    corrector, path = scripted
    dev = [
        Example(f"n{i}", "asr", ["the cat sad", "the cat sat"], reference="the cat sat", dataset="d")
        for i in range(MIN_DATASET)
    ]
    tunings = tune_gate(corrector, dev)
    assert tunings["asr"].best.score == 0.0 and "1-best" not in tunings["asr"].best.taken
    save_gate_settings(path, tunings)
    info = read_model_info(path)
    assert set(info.gate) == {"asr"} and info.gate["asr"] == tunings["asr"].best.rule
    tuned = Corrector(corrector.model, corrector.tokenizer, info)
    asr, tec = tuned.correct(
        [Example("a", "asr", ["the cat sad", "the cat sat"]), Example("t", "tec", ["the cat sad"])]
    )
    assert asr.decision in ("model", "rerank") and asr.text == SCRIPT
    assert (tec.decision, tec.reason, tec.text) == ("1-best", "gate closed", "the cat sad")  # never tuned


def test_bad_gate_settings_are_one_line(tmp_path):
    path = make_model_dir(tmp_path / "model")
    info = json.loads((path / "neko.json").read_text())
    for gate, message in [
        ({"xyz": {}}, "gate: names 'xyz', which is not one of the model's tasks"),
        ({"asr": {"accept_margin": "high"}}, "gate.asr.accept_margin: must be a number, got 'high'"),
        ({"asr": {"margin": 0.1}}, "gate.asr: unknown key 'margin'"),
        ({"asr": {"require_support": 1}}, "gate.asr.require_support: must be true or false, got 1"),
        ({"asr": 0.1}, "gate.asr: must be a mapping"),
    ]:
        (path / "neko.json").write_text(json.dumps(info | {"gate": gate}))
        with pytest.raises(NekoError, match=re.escape(message)):
            read_model_info(path)
    (path / "neko.json").write_text(json.dumps(info | {"max_edit_rate": {"asr": -1}}))
    with pytest.raises(NekoError, match=r"max_edit_rate\.asr: must be >= 0"):
        read_model_info(path)


def test_tune_gate_command_writes_the_chosen_rules_and_refuses_test_files(tmp_path):
    path = make_model_dir(tmp_path / "model", max_new_tokens=4)
    dev = tmp_path / "dev.jsonl"
    write_jsonl(
        dev,
        [
            Example("a", "asr", ["the cat sad", "the cat"], reference="the cat sat"),
            Example("t", "tec", ["he go home"], reference="he goes home"),
        ],
    )
    if not any(command.name == "tune-gate" for command in app.registered_commands):
        _register_commands()
    runner = CliRunner()
    result = runner.invoke(app, ["tune-gate", str(dev), "--model", str(path), "--out", str(tmp_path / "t")])
    assert result.exit_code == 0, result.output
    assert "asr: wer on 1 dev examples" in result.stdout and "tec: gleu on 1 dev examples" in result.stdout
    assert read_model_info(path).gate == {}  # a dry run by default
    assert (tmp_path / "t" / "risk-coverage.png").stat().st_size > 0
    assert {r["task"] for r in json.loads((tmp_path / "t" / "tuning.json").read_text())} == {"asr", "tec"}
    result = runner.invoke(app, ["tune-gate", str(dev), "--model", str(path), "--write"])
    assert result.exit_code == 0, result.output
    assert set(read_model_info(path).gate) == {"asr", "tec"}
    test = tmp_path / "test.jsonl"
    test.write_bytes(dev.read_bytes())
    result = runner.invoke(app, ["tune-gate", str(test), "--model", str(path)])
    assert isinstance(result.exception, NekoError) and "looks like a test file" in str(result.exception)


def test_saved_evidence_is_reused_only_for_the_same_model_and_examples(tmp_path):
    saved = rows(
        "asr", [("d", ["the cat sad", "the cat sat"], "the cat sat", "the cat sat", 2.0, -1.0, True)]
    )
    examples = [r.example for r in saved]
    path = tmp_path / "evidence.jsonl"
    write_rows(path, saved, model="weights-a")
    assert read_rows(path, examples, model="weights-a") == saved
    with pytest.raises(NekoError, match=r"evidence\.jsonl: holds the evidence of another model"):
        read_rows(path, examples, model="weights-b")
    _, *lines = path.read_text().splitlines()
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(NekoError, match=r"empty\.jsonl: not a gate evidence file"):
        read_rows(empty, examples, model="weights-a")
    older = tmp_path / "older.jsonl"
    older.write_text("\n".join([json.dumps({"evidence_of_model": "weights-a"}), *lines]) + "\n")
    with pytest.raises(NekoError, match=r"older\.jsonl: evidence collected by another version of neko"):
        read_rows(older, examples, model="weights-a")
    record = json.loads(lines[0])
    for field, value, kind in [
        ("margin", "x", "a number"),
        ("supported", 1, "true or false"),
        ("best", None, "a string"),
    ]:
        damaged = tmp_path / f"damaged-{field}.jsonl"
        bad = {**record, "evidence": {**record["evidence"], field: value}}
        damaged.write_text(path.read_text().splitlines()[0] + "\n" + json.dumps(bad) + "\n")
        with pytest.raises(
            NekoError, match=rf"damaged-{field}\.jsonl:2: field 'evidence\.{field}' must be {kind}"
        ):
            read_rows(damaged, examples, model="weights-a")
    damaged.write_text(
        path.read_text().splitlines()[0] + "\n" + json.dumps({**record, "evidence": [1]}) + "\n"
    )
    with pytest.raises(NekoError, match=r":2: field 'evidence' must be a JSON object"):
        read_rows(damaged, examples, model="weights-a")
    edited = [replace(examples[0], reference="the cat sang")]  # same id, another reference
    with pytest.raises(NekoError, match=r"evidence\.jsonl: holds the evidence of other examples"):
        read_rows(path, edited, model="weights-a")


def test_bleu_replayed_from_sentence_statistics_is_sacrebleus_corpus_bleu():
    # the replay reads sacrebleu's per-sentence statistics through its private helpers: this holds it
    # to the public corpus score for any choice
    references = [["el gato se sienta"], ["un perro corre en el parque", "el perro corre"], ["hola mundo"]]
    texts = [
        ["el gato sienta", "un gato se sienta", "el gato se sienta"],
        ["un perro corre", "el perro corre en el parque", "un perro corre en el parque"],
        ["hola", "hola mundo", "adios mundo"],
    ]
    saved = [
        Row(
            Example(f"e{i}", "st", row, reference=refs[0], extra_references=refs[1:]),
            Evidence(row[2], row[0], row[1], 0.0, 0.0, 0.0, True, 0.0),
            0.0,
        )
        for i, (row, refs) in enumerate(zip(texts, references, strict=True))
    ]
    replayed = _BleuStats(saved, texts)
    for choice in ([0, 0, 0], [1, 2, 0], [2, 2, 2], [0, 1, 2]):
        chosen = [row[k] for row, k in zip(texts, choice, strict=True)]
        expected, _ = bleu(chosen, references)
        assert replayed.score(np.array(choice), np.arange(3)) == pytest.approx(expected)


def test_a_domain_touched_for_a_gain_too_small_to_trust_is_left_alone():
    # 160 errors in 800 words; one output fixes one of them: a gain of 0.6% of the 1-best's WER, below
    # MIN_DOMAIN_GAIN, so the setting that takes it is out; the confident captions fixes stay in.
    reference = "one two three four five six seven eight nine ten"
    wrong = "won two three four five six seven eight nine tan"
    fix = (
        "jfleg",
        [wrong],
        reference,
        reference.replace("one", "won", 0).replace("ten", "tan"),
        0.3,
        -2.0,
        True,
    )
    same = ("jfleg", [wrong], reference, wrong, 0.0, -2.0, True)
    captions = ("captions", ["a dog run"], "a dog runs", "a dog runs", 0.9, -2.0, True)
    tuning = tune_task(
        "asr", rows("asr", [fix] + [same] * 79 + [captions] * MIN_DATASET), Scorer(errant=False)
    )
    assert tuning.one_best_per_dataset["jfleg"] == pytest.approx(20.0)
    assert tuning.best.per_dataset["jfleg"] == pytest.approx(20.0)
    assert tuning.best.taken == {"1-best": 80, "model": MIN_DATASET}


# Outputs of three dev domains that the signals tell apart only by support: unsupported rewrites help
# captions and damage handbook (at a smaller margin), supported fixes help atis.
CAPTIONS = ("captions", ["a dog run"], "a dog runs", "a dog runs", 0.9, -2.0, False)
HANDBOOK = ("handbook", ["install the package"], "install the package", "install a package", 0.6, -2.0, False)
ATIS = (
    "atis",
    ["flight to boston", "flights to boston"],
    "flights to boston",
    "flights to boston",
    0.6,
    -2.0,
    True,
)


def test_a_setting_that_harms_a_domain_left_out_of_its_tuning_gives_way_to_a_more_careful_one():
    cases = [CAPTIONS] * (2 * MIN_DATASET) + [HANDBOOK] * MIN_DATASET + [ATIS] * MIN_DATASET
    tuning = tune_task("asr", rows("asr", cases), Scorer(errant=False))
    # Tuned on captions and atis, the bold setting takes every output with margin >= 0.5, and handbook,
    # standing for a domain the dev data does not show, gets worse: only supported edits are trusted.
    assert tuning.rejected == {"as tuned": "made handbook worse"}
    assert tuning.caution == "supported edits"
    assert tuning.best.rule.require_support
    assert tuning.best.taken == {"model": MIN_DATASET, "1-best": 3 * MIN_DATASET}
    assert tuning.best.per_dataset["atis"] == 0.0
    assert all(tuned <= one_best for one_best, tuned in tuning.held_out.values())


def test_a_task_whose_dev_data_shows_one_domain_only_reranks():
    tuning = tune_task("asr", rows("asr", [ATIS] * (2 * MIN_DATASET)), Scorer(errant=False))
    assert tuning.caution == "reranking familiar input" and tuning.held_out == {}
    assert tuning.best.rule.accept_margin is None
    assert tuning.best.taken == {"1-best": 2 * MIN_DATASET}


def test_a_dev_set_too_small_to_judge_on_keeps_the_gate_closed():
    rerankable = (
        "atis",
        ["flight to boston", "flights to boston"],
        "flights to boston",
        "flights to boston",
        -1.0,
        -2.0,
        True,
    )
    tuning = tune_task("asr", rows("asr", [rerankable] * (MIN_DATASET - 1)), Scorer(errant=False))
    assert tuning.caution == "closed" and tuning.best.taken == {"1-best": MIN_DATASET - 1}
    assert tuning.rejected == {
        "reranking familiar input": f"no dev domain has the {MIN_DATASET} examples to judge it on"
    }
    judged = tune_task("asr", rows("asr", [rerankable] * MIN_DATASET), Scorer(errant=False))
    assert judged.caution == "reranking familiar input"  # enough examples: the careful level is tried


def test_a_gain_on_one_dataset_of_a_domain_cannot_hide_the_damage_to_another():
    fix = ("modern/captions", ["a dog run"], "a dog runs", "a dog runs", 0.9, -2.0, True)
    harm = (
        "modern/wordnet",
        ["install the package"],
        "install the package",
        "install a package",
        0.9,
        -2.0,
        True,
    )
    cases = [fix] * (3 * MIN_DATASET) + [harm] * MIN_DATASET + [ATIS] * MIN_DATASET
    tuning = tune_task("asr", rows("asr", cases), Scorer(errant=False))
    # Together the modern domain gains, but its wordnet part would lose: the margin 0.9 outputs stay out.
    assert tuning.one_best_per_dataset["modern"] > 0
    assert tuning.best.per_dataset["modern"] == tuning.one_best_per_dataset["modern"]


def test_a_gain_that_a_few_lucky_examples_make_must_survive_resampling():
    # Each captions row has one error in three words. With one fix among 60 rows the domain gains 1.7%
    # (above MIN_DOMAIN_GAIN), but a resample of the rows misses that row a third of the time: luck,
    # not a gain. Five fixes gain in nearly every resample and are taken.
    fix = ("captions", ["a dog run"], "a dog runs", "a dog runs", 0.9, -2.0, True)
    same = ("captions", ["a cat run"], "a cat runs", "a cat run", 0.0, -2.0, True)
    other = (
        "handbook",
        ["install the package"],
        "install the package",
        "install the package",
        0.0,
        -2.0,
        True,
    )
    for fixes, taken in ((1, {"1-best": 80}), (5, {"1-best": 75, "model": 5})):
        cases = [fix] * fixes + [same] * (60 - fixes) + [other] * MIN_DATASET
        tuning = tune_task("asr", rows("asr", cases), Scorer(errant=False))
        assert tuning.best.taken == taken
    lucky = tune_task("asr", rows("asr", [fix] + [same] * 59 + [other] * MIN_DATASET), Scorer(errant=False))
    assert lucky.caution == "reranking familiar input"  # which, with nothing to rerank, touches nothing
    assert lucky.rejected["as tuned"].startswith("gained on captions in only")


def test_when_the_near_best_gains_are_luck_the_largest_gain_that_holds_is_taken():
    # Five confident captions fixes hold under resampling; a handbook fix at a smaller margin is one in
    # 60 rows, luck. Every setting within KEEP_GAIN of the best gain takes the handbook fix too (the
    # captions fixes alone are 5/6 of that gain), so none holds; the level is then judged by the
    # largest gain that does hold: the captions fixes alone.
    fix = ("captions", ["a dog run"], "a dog runs", "a dog runs", 0.9, -2.0, True)
    same = ("captions", ["a cat run"], "a cat runs", "a cat run", 0.0, -2.0, True)
    lucky = ("handbook", ["a pig run"], "a pig runs", "a pig runs", 0.6, -2.0, True)
    plain = ("handbook", ["a cow run"], "a cow runs", "a cow run", 0.0, -2.0, True)
    cases = [fix] * 5 + [same] * 55 + [lucky] + [plain] * 59
    tuning = tune_task("asr", rows("asr", cases), Scorer(errant=False))
    assert tuning.caution == "as tuned"
    assert tuning.best.taken == {"1-best": 115, "model": 5}
    assert tuning.best.per_dataset["handbook"] == tuning.one_best_per_dataset["handbook"]
    assert tuning.best.per_dataset["captions"] < tuning.one_best_per_dataset["captions"]
    assert tuning.boldest.per_dataset["handbook"] < tuning.one_best_per_dataset["handbook"]
