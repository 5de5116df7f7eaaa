"""A task owns its scoring: a user's task with a metric of its own is scored everywhere, unchanged code.

The metric here is a sentence error rate (percent of outputs that differ from the main reference,
after the task's normaliser); its values are computed by hand in the comments.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import pytest

import neko.evaluate.metrics as metrics_module
import neko.tasks as tasks_module
from neko.correct.gate import Evidence
from neko.correct.tuning import MIN_DATASET, Row, tune_task
from neko.data.schema import Example
from neko.data.splits import source_text
from neko.errors import NekoError
from neko.evaluate.data_stats import describe
from neko.evaluate.metrics import Metric, Scorer, get_metric, register_metric
from neko.evaluate.oracles import task_oracle_outputs
from neko.evaluate.report import evaluate, render_markdown
from neko.tasks import Task, register_task


def sentence_error_rate(scorer: Scorer, examples: Sequence[Example], outputs: Sequence[str]) -> float:
    normalize = scorer.normalize_fn(examples[0].task)
    wrong = sum(normalize(o) != normalize(e.reference) for e, o in zip(examples, outputs, strict=True))
    return 100.0 * wrong / len(examples)


SER = Metric("ser", "SER", True, sentence_error_rate, also=("cer",), normalizer="none", oracle_unit="char")
TASK = Task("caption", "a captioning system", "correct caption", "ser")


@pytest.fixture
def caption_task():
    register_metric(SER)
    register_task(TASK)
    yield TASK
    tasks_module._REGISTRY.pop(TASK.name, None)
    metrics_module._METRICS.pop(SER.name, None)


def examples() -> list[Example]:
    return [
        # 1-best "a cat" is wrong; the second hypothesis is the reference: oracle picks it.
        Example(id="c1", task="caption", hypotheses=["a cat", "a hat"], reference="a hat", dataset="d"),
        Example(id="c2", task="caption", hypotheses=["the dog", "the dig"], reference="the dog", dataset="d"),
    ]


def test_a_registered_metric_is_known_by_name(caption_task):
    assert get_metric("ser") is SER and SER.lower_is_better and SER.arrow_label == "SER ↓"
    scorer = Scorer()
    assert scorer.headline("caption") == "ser" and scorer.metrics_for("caption") == ["ser", "cer"]
    assert scorer.normalizer_for("caption") == "none"
    with pytest.raises(NekoError, match="already registered with a different definition"):
        register_metric(Metric("ser", "SER", False, sentence_error_rate))


def test_the_report_scores_the_new_task_with_its_metric_and_oracle(caption_task):
    report = evaluate(examples(), {"fixed": {"c1": "a hat", "c2": "the dig"}})
    row = report.row("caption")
    # 1-best: c1 wrong, c2 right -> 50; fixed: c1 right, c2 wrong -> 50; oracle: both right -> 0.
    assert row.scores["ser"] == {"1-best": 50.0, "fixed": 50.0, "oracle": 0.0}
    assert list(row.scores) == ["ser", "cer"]
    assert report.to_dict()["results"][-1]["metrics"]["ser"]["direction"] == "lower"
    assert "SER ↓" in render_markdown(report)
    assert "o_cp" not in report.columns("caption")  # the metric does not ask for the compositional oracle


def test_data_statistics_and_oracles_ask_the_task(caption_task):
    scorer = Scorer()
    assert task_oracle_outputs(examples(), scorer) == {"c1": "a hat", "c2": "the dog"}
    overall = describe(examples())[-1]
    assert (overall.metric, overall.metric_1best, overall.metric_oracle) == ("ser", 50.0, 0.0)


def test_tuning_follows_the_metrics_direction(caption_task):
    # The valve rejected the output: the 1-best "a cat" (SER 100) or the rerank pick "a hat" (SER 0)
    # replaces it; lower is better, so a gate that takes the rerank wins.
    example = examples()[0]
    found = Evidence("dog", "a cat", "a hat", 0.0, 1.0, -2.0, False, 0.0, valve_reason="unrelated")
    rows = [Row(replace(example, id=f"c{i}"), found, 0.0) for i in range(MIN_DATASET)]  # enough to judge
    tuning = tune_task("caption", rows, Scorer())
    assert (tuning.metric, tuning.one_best) == ("ser", 100.0)
    assert (tuning.best.taken, tuning.best.score) == ({"rerank": MIN_DATASET}, 0.0)


def test_splits_take_the_reference_of_tasks_with_english_outputs(caption_task):
    assert source_text(examples()[0]) == "a hat"
    translation = Example(id="s1", task="st", hypotheses=["hola"], reference="hola")
    assert source_text(translation) is None


def test_a_metric_with_a_bad_declaration_is_one_line():
    with pytest.raises(NekoError, match="metric 'x': oracle_unit must be one of word, char"):
        Metric("x", "X", True, sentence_error_rate, oracle_unit="sentence")
    with pytest.raises(NekoError, match="metric 'x': unknown normaliser 'loud'"):
        Metric("x", "X", True, sentence_error_rate, normalizer="loud")
    with pytest.raises(NekoError, match="unknown metric 'nope'"):
        get_metric("nope")
