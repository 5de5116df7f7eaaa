"""evaluate(), the report files, heatmaps, `neko eval` and `neko data stats` on a small fixture.

Fixture (tests/fixtures/eval/data.jsonl), with the hand-computed scores the tests check:
- asr a1 (d1): ref "the cat sat on the mat" (6 words); 1-best 1 error, oracle 0, o_cp 0; corrected
  "the cat sat on mat": 1 deletion.
- asr a2 (d1): ref "i have two dogs" (4); 1-best 1 error, oracle 1 (1-best), o_cp 1 ("two" nowhere);
  corrected "I have two dogs." normalises to the reference: 0.
- asr a3 (d2): ref "hello world" (2); 1-best 1, oracle 1, o_cp 0; corrected 0.
  d1: 1-best 2/10 = 20%, corrected 1/10 = 10% (-50%), oracle 10%, o_cp 10%.
  d2: 1-best 50%, corrected 0% (-100%), oracle 50%, o_cp 0%.
  all: 1-best 3/12 = 25%, corrected 1/12 = 8.33% (-66.7%), oracle 2/12 = 16.67%, o_cp 1/12 = 8.33%.
- st s1: 1-best "a b c d e" vs "a b c d f"/"a b c d g": BLEU = 100 * 0.2 ** 0.25 = 66.87;
  corrected exact: 100.
- ocr o1: "Helo w0rld" vs "Hello world": CER 2/11 = 18.18%, WER 100%; corrected exact: 0.
- tec t1, t2: see test_metrics.py for the GLEU arithmetic.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from neko.correct import Corrector
from neko.data.cli import stats_command
from neko.data.jsonl import read_jsonl, write_jsonl
from neko.data.schema import Example
from neko.errors import NekoError
from neko.evaluate.cli import eval_command, read_prediction_lines
from neko.evaluate.data_stats import describe, print_stats
from neko.evaluate.heatmap import expert_fractions, validate_routing_stats
from neko.evaluate.report import evaluate, render_markdown, write_report

FIXTURES = Path(__file__).parent / "fixtures" / "eval"
DATA = FIXTURES / "data.jsonl"
PREDICTIONS = FIXTURES / "predictions.jsonl"
ROUTING = FIXTURES / "routing_stats.json"


def read_predictions(path) -> dict[str, str]:
    """`{"id", "correction"}` JSONL lines as {id: correction}."""
    return {key: text for key, (text, _) in read_prediction_lines(path).items()}


@pytest.fixture(scope="module")
def examples():
    return list(read_jsonl(DATA))


@pytest.fixture(scope="module")
def report(examples):
    corrected = read_predictions(PREDICTIONS)
    rerank = {e.id: e.hypotheses[-1] for e in examples}  # the last hypothesis, as a second system
    return evaluate(examples, {"corrected": corrected, "rerank": rerank}, errant=False)


def test_evaluate_asr(report):
    assert report.systems == ["1-best", "corrected", "rerank", "oracle"]
    d1, d2, overall = report.row("asr", "d1"), report.row("asr", "d2"), report.row("asr")
    assert d1.examples == 2 and d2.examples == 1 and overall.examples == 3
    assert d1.scores["wer"] == pytest.approx(
        {
            "1-best": 20.0,
            "corrected": 10.0,
            "rerank": d1.scores["wer"]["rerank"],
            "oracle": 10.0,
            "o_cp": 10.0,
        }
    )
    assert d1.relative("wer", "corrected") == pytest.approx(-50.0)
    assert d2.scores["wer"]["corrected"] == 0.0 and d2.relative("wer", "corrected") == pytest.approx(-100.0)
    assert d2.scores["wer"]["oracle"] == 50.0 and d2.scores["wer"]["o_cp"] == 0.0
    assert overall.scores["wer"]["1-best"] == pytest.approx(25.0)
    assert overall.scores["wer"]["corrected"] == pytest.approx(100 / 12)
    assert overall.relative("wer", "corrected") == pytest.approx(-200 / 3)
    assert overall.scores["wer"]["oracle"] == pytest.approx(200 / 12)
    assert overall.scores["wer"]["o_cp"] == pytest.approx(100 / 12)
    # rerank = last hypothesis: a1 "a bat sat on the hat" 3 errors, a2 "eye have too dogs" 2: 5 / 10.
    assert d1.scores["wer"]["rerank"] == pytest.approx(50.0)


def test_evaluate_other_tasks(report):
    st = report.row("st")
    assert list(st.scores) == ["bleu", "chrf"]
    assert st.scores["bleu"]["1-best"] == pytest.approx(100 * 0.2**0.25)
    assert st.scores["bleu"]["corrected"] == pytest.approx(100.0)
    assert st.scores["bleu"]["oracle"] == pytest.approx(100.0)  # hypothesis 2 equals the reference
    ocr = report.row("ocr", "ocr-set")
    assert ocr.scores["cer"]["1-best"] == pytest.approx(100 * 2 / 11)
    assert ocr.scores["wer"]["1-best"] == 100.0 and ocr.scores["cer"]["corrected"] == 0.0
    tec = report.row("tec")
    assert list(tec.scores) == ["gleu"]
    # corrected: t1 "the cat sits on mat" + t2 exact. Iterations drawing REF0 (242 of 500) sum to
    # [9,10,9,9,5,7,4,5,2,3] -> exp(1-10/9) (5/7 * 4/5 * 2/3)^.25 = 0.703012; those drawing REF1 (258) to
    # [9,10,8,9,3,7,2,5,1,3] -> exp(1-10/9) (8/9 * 3/7 * 2/5 * 1/3)^.25 = 0.424813. Mean: 0.559462.
    bp = math.exp(1 - 10 / 9)
    expected = (
        242 / 500 * bp * (5 / 7 * 4 / 5 * 2 / 3) ** 0.25
        + 258 / 500 * bp * (8 / 9 * 3 / 7 * 2 / 5 / 3) ** 0.25
    )
    assert tec.scores["gleu"]["corrected"] == pytest.approx(100 * expected)
    assert "bleu" in report.signatures and "gleu" in report.signatures


def test_evaluate_rejects_bad_input(examples):
    with pytest.raises(NekoError, match="system 'corrected' has no output for example 'a1'"):
        evaluate(examples, {"corrected": {}})
    with pytest.raises(NekoError, match="reserved"):
        evaluate(examples, {"oracle": {e.id: "" for e in examples}})
    unreferenced = [*examples[:1], type(examples[0])(id="x", task="asr", hypotheses=["a"])]
    with pytest.raises(NekoError, match="example 'x' has no reference"):
        evaluate(unreferenced)


def test_write_report(report, tmp_path):
    report.routing = json.loads(ROUTING.read_text())
    try:
        written = write_report(report, tmp_path)
    finally:
        report.routing = None
    names = {p.name for p in written}
    assert names == {"report.md", "report.json", "expert_utilization.png", "gate_probability.png"}
    record = json.loads((tmp_path / "report.json").read_text())
    asr_all = next(r for r in record["results"] if r["task"] == "asr" and r["dataset"] == "(all)")
    assert asr_all["metrics"]["wer"]["scores"]["1-best"] == pytest.approx(25.0)
    assert asr_all["metrics"]["wer"]["relative_change"]["corrected"] == pytest.approx(-200 / 3)
    assert asr_all["metrics"]["wer"]["direction"] == "lower"
    assert record["routing"]["fractions"][0][0] == pytest.approx([0.1, 0.3, 0.0, 0.6])
    markdown = (tmp_path / "report.md").read_text()
    assert "| (all) | 3 | WER ↓ | 25.00 | 8.33 (-66.7%) |" in markdown
    assert "![expert utilization](expert_utilization.png)" in markdown
    assert (tmp_path / "expert_utilization.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_markdown_without_routing(report):
    text = render_markdown(report)
    sections = [line for line in text.splitlines() if line.startswith("## ")]
    assert sections == ["## asr", "## st", "## ocr", "## tec", "## Signatures"]
    # rerank = the last hypotheses: 3 + 2 + 1 errors in 12 words
    assert (
        "| (all) | 3 | WER ↓ | 25.00 | 8.33 (-66.7%) | 50.00 (+100.0%) | 16.67 (-33.3%) | 8.33 (-66.7%) |"
        in text
    )
    assert "Expert" not in text and "![" not in text


def test_a_group_of_silent_utterances_has_no_error_rate_but_counts_in_the_total():
    silence = Example(id="s1", task="asr", hypotheses=["uh", ""], reference="", dataset="silence")
    speech = Example(id="a1", task="asr", hypotheses=["a b"], reference="a b", dataset="speech")
    text = render_markdown(evaluate([silence, speech], {"corrected": {"s1": "", "a1": "a b"}}, errant=False))
    assert "| silence | 1 | WER ↓ | n/a | n/a | n/a | n/a |" in text
    # the 1-best's inserted "uh" counts against the 2 words of the total: 50%
    assert "| (all) | 2 | WER ↓ | 50.00 | 0.00 (-100.0%) | 0.00 (-100.0%) | 0.00 (-100.0%) |" in text


def test_routing_stats_validation():
    stats = json.loads(ROUTING.read_text())
    fractions = expert_fractions(stats)
    # ocr, layer 1 has no tokens: the row stays zero instead of dividing by zero.
    assert fractions[2][1].tolist() == [0.0, 0.0, 0.0, 0.0]
    assert fractions[3][0].tolist() == pytest.approx([0.1, 0.1, 0.2, 0.6])  # [2, 2, 4, 12] / 20
    with pytest.raises(NekoError, match="field 'counts' has shape"):
        validate_routing_stats({**stats, "num_experts": 3})
    with pytest.raises(NekoError, match="missing field 'tasks'"):
        validate_routing_stats({"num_layers": 1})


def test_eval_command(tmp_path, capsys):
    out = tmp_path / "reports" / "x"
    eval_command(DATA, out, [str(PREDICTIONS)], routing_stats=ROUTING)
    printed = capsys.readouterr().out
    cells = r"\s*│\s*"
    asr_all = cells.join([r"\(all\)", "3", "WER ↓", r"25\.00", r"8\.33 \(-66\.7%\)", r"16\.67 \(-33\.3%\)"])
    assert re.search(asr_all + cells + r"8\.33 \(-66\.7%\)", printed), printed
    st_all = cells.join([r"\(all\)", "1", "BLEU ↑", r"66\.87", r"100\.00 \(\+49\.5%\)", r"100\.00"])
    assert re.search(st_all, printed), printed
    assert "nrefs:2|case:mixed" in printed  # the sacrebleu signature
    for name in ("report.md", "report.json", "expert_utilization.png", "gate_probability.png"):
        assert (out / name).stat().st_size > 0


def test_eval_command_through_typer(tmp_path):
    app = typer.Typer()
    app.command("eval")(eval_command)
    app.command("other")(lambda: None)  # a second command keeps "eval" as a sub-command
    other = tmp_path / "rerank.jsonl"
    other.write_text(
        "".join(json.dumps({"id": e.id, "correction": e.best_hypothesis}) + "\n" for e in read_jsonl(DATA))
    )
    result = CliRunner().invoke(
        app,
        [
            "eval",
            str(DATA),
            "-p",
            str(PREDICTIONS),
            "-p",
            f"rerank={other}",
            "--out",
            str(tmp_path / "out"),
            "--gleu-iterations",
            "10",
        ],
    )
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "out" / "report.json").read_text())
    assert record["systems"] == ["1-best", "corrected", "rerank", "oracle"]
    assert "gleu:jfleg-2016|order:4|iterations:10" in record["signatures"]["gleu"]


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def test_eval_command_errors(tmp_path, examples):
    good = PREDICTIONS.read_text().splitlines()
    missing = _write(tmp_path / "missing.jsonl", good[1:])
    with pytest.raises(NekoError, match=r"missing.jsonl: no prediction for example 'a1' of .*data.jsonl"):
        eval_command(DATA, tmp_path / "o", [str(missing)])
    extra = _write(tmp_path / "extra.jsonl", [*good, '{"id": "zzz", "correction": "x"}'])
    with pytest.raises(NekoError, match=r"extra.jsonl:8: id 'zzz' is not an example of"):
        eval_command(DATA, tmp_path / "o", [str(extra)])
    broken = _write(tmp_path / "broken.jsonl", [good[0], "{not json"])
    with pytest.raises(NekoError, match=r"broken.jsonl:2: not valid JSON"):
        eval_command(DATA, tmp_path / "o", [str(broken)])
    twice = _write(tmp_path / "twice.jsonl", [*good, good[0]])
    with pytest.raises(NekoError, match=r"twice.jsonl:8: a second prediction for id 'a1'"):
        eval_command(DATA, tmp_path / "o", [str(twice)])
    no_field = _write(tmp_path / "nofield.jsonl", ['{"id": "a1"}'])
    with pytest.raises(NekoError, match=r"nofield.jsonl:1: missing field 'correction'"):
        eval_command(DATA, tmp_path / "o", [str(no_field)])
    unreferenced = _write(tmp_path / "data.jsonl", ['{"id": "q", "task": "asr", "hypotheses": ["a"]}'])
    with pytest.raises(NekoError, match=r"data.jsonl: example 'q' has no reference"):
        eval_command(unreferenced, tmp_path / "o", [str(PREDICTIONS)])
    bad_stats = _write(
        tmp_path / "stats.json",
        ['{"tasks": ["asr"], "num_layers": 1, "num_experts": 2, "counts": [[[1, 2, 3]]]}'],
    )
    with pytest.raises(NekoError, match=r"stats.json: field 'counts' has shape \[1, 1, 3\]"):
        eval_command(DATA, tmp_path / "o", [str(PREDICTIONS)], routing_stats=bad_stats)


def test_describe(examples, capsys):
    rows = {(r.task, r.dataset): r for r in describe(examples, gleu_iterations=10)}
    asr = rows[("asr", "(all)")]
    assert (asr.examples, asr.with_reference, asr.hypotheses_min, asr.hypotheses_max) == (3, 3, 2, 3)
    assert asr.hypotheses_mean == pytest.approx(7 / 3)  # 3 + 2 + 2 hypotheses
    assert asr.metric == "wer"
    assert asr.wer_1best == pytest.approx(25.0) and asr.wer_oracle == pytest.approx(200 / 12)
    assert asr.metric_1best == asr.wer_1best
    d1 = rows[("asr", "d1")]
    assert d1.wer_1best == pytest.approx(20.0) and d1.wer_oracle == pytest.approx(10.0)
    ocr = rows[("ocr", "(all)")]
    assert ocr.metric == "cer" and ocr.cer_1best == pytest.approx(100 * 2 / 11)
    st = rows[("st", "(all)")]
    assert st.metric == "bleu" and st.metric_1best == pytest.approx(100 * 0.2**0.25)
    assert st.metric_oracle == pytest.approx(100.0)
    assert rows[("tec", "(all)")].metric == "gleu"
    print_stats(list(rows.values()))
    printed = capsys.readouterr().out
    assert re.search(r"asr\s*│\s*\(all\)\s*│\s*3\s*│\s*3\s*│\s*2\.33 \[2-3\]\s*│\s*25\.00 / 16\.67", printed)


def test_describe_without_references():
    example = type(next(iter(read_jsonl(DATA))))(id="n1", task="asr", hypotheses=["a b", "a c"])
    (row, _overall) = describe([example])
    assert row.with_reference == 0 and row.wer_1best is None and row.hypotheses_mean == 2.0


def test_stats_command_through_typer():
    app = typer.Typer()
    app.command("stats")(stats_command)
    app.command("other")(lambda: None)
    result = CliRunner().invoke(app, ["stats", str(DATA)])
    assert result.exit_code == 0, result.output
    ocr_all = (
        r"ocr\s*│\s*\(all\)\s*│\s*1\s*│\s*1\s*│\s*1\.00 \[1-1\]\s*│\s*100\.00 / 100\.00\s*│\s*18\.18 / 18\.18"
    )
    assert re.search(ocr_all, result.output), result.output


def test_eval_runs_a_model_first_with_rerank_baseline_and_routing_heatmaps(tmp_path, model_path):
    out = tmp_path / "report"
    eval_command(DATA, out, model=str(model_path), batch_size=4)
    written = {p.name for p in out.iterdir()}
    assert {
        "report.md",
        "report.json",
        "predictions-corrected.jsonl",
        "predictions-rerank.jsonl",
        "routing_stats.json",
        "expert_utilization.png",
    } <= written
    examples = list(read_jsonl(DATA))
    corrector = Corrector.from_pretrained(model_path)
    corrected = {c.id: c.text for c in corrector.correct(examples)}
    reranked = {e.id: text for e, text in zip(examples, corrector.rerank(examples), strict=True)}
    assert read_predictions(out / "predictions-corrected.jsonl") == corrected
    assert read_predictions(out / "predictions-rerank.jsonl") == reranked
    report = json.loads((out / "report.json").read_text())
    assert report["systems"] == ["1-best", "corrected", "rerank", "oracle"]
    expected = evaluate(examples, {"corrected": corrected, "rerank": reranked}, errant=False)
    asr_all = next(r for r in report["results"] if r["task"] == "asr" and r["dataset"] == "(all)")
    assert asr_all["metrics"]["wer"]["scores"] == pytest.approx(expected.row("asr").scores["wer"])
    routing = json.loads((out / "routing_stats.json").read_text())
    stats = corrector.routing_stats(examples, outputs=[corrected[e.id] for e in examples])
    assert routing["counts"] == stats.counts.tolist()


def test_eval_scores_several_files_and_a_fixed_subset_per_dataset(tmp_path):
    other = tmp_path / "other.jsonl"
    examples = list(read_jsonl(DATA))
    write_jsonl(other, [replace(e, id=e.id + "-copy") for e in examples])
    predictions = tmp_path / "pred.jsonl"
    pred_lines = [json.loads(line) for line in PREDICTIONS.read_text().splitlines()]
    copies = [{**p, "id": p["id"] + "-copy"} for p in pred_lines]
    predictions.write_text("".join(json.dumps(p) + "\n" for p in pred_lines + copies))
    out = tmp_path / "both"
    eval_command([DATA, other], out, [str(predictions)], limit_per_dataset=1)
    results = json.loads((out / "report.json").read_text())["results"]
    per_dataset = [r for r in results if r["dataset"] != "(all)"]
    assert per_dataset and all(r["examples"] == 1 for r in per_dataset)
    with pytest.raises(NekoError, match="no prediction"):
        eval_command([DATA, other], tmp_path / "o", [str(PREDICTIONS)])


def test_eval_quiet_turns_the_progress_bar_off(tmp_path, model_path, monkeypatch):
    import neko.evaluate.cli as evaluate_cli

    asked = []
    real_bar = evaluate_cli.progress_bar

    def recording_bar(description, total, quiet=False):
        asked.append(quiet)
        return real_bar(description, total, quiet)

    monkeypatch.setattr(evaluate_cli, "progress_bar", recording_bar)
    for quiet in (False, True):
        eval_command(DATA, tmp_path / str(quiet), model=str(model_path), batch_size=4, quiet=quiet)
    assert asked == [False, True]
