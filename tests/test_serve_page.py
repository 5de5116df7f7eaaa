"""The web page of `neko serve` in a real headless Chromium (Debian's, driven by Playwright): pasted
hypotheses, a picked example, changed words highlighted, the gate's decision, and errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from correct_fixtures import make_model_dir, script_outputs
from serve_fixtures import running, wait_ready

from neko.correct import Corrector
from neko.correct.gate import GateRule
from neko.correct.model_dir import read_model_info, write_model_info
from neko.data.formats import read_examples
from neko.serve.app import create_app

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DEMO = Path(__file__).resolve().parents[1] / "examples" / "demo.jsonl"
RERANK_GATE = GateRule(rerank_margin=-100.0)
"""Refuses every model output that changes the 1-best and takes the model's pick among the hypotheses."""

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright is not installed (pip install -e .[dev])"
)
pytestmark = pytest.mark.skipif(
    not CHROMIUM.is_file(), reason=f"no Chromium at {CHROMIUM} (scripts/setup.sh --dev installs Debian's)"
)


@pytest.fixture(scope="module")
def corrector(tmp_path_factory) -> Corrector:
    """The tiny model, made to answer "the cat sat" to everything; its gate takes every output the
    valve passes, but for `st`, where it takes the hypothesis the model ranks first."""
    model_dir = make_model_dir(tmp_path_factory.mktemp("model") / "tiny", open_gate=True)
    info = read_model_info(model_dir)
    write_model_info(model_dir, info.model_copy(update={"gate": {**info.gate, "st": RERANK_GATE}}))
    corrector = Corrector.from_pretrained(model_dir, device="cpu")
    ids = corrector.tokenizer.encode(" the cat sat", add_special_tokens=False)
    undo = script_outputs(corrector.model, [*ids, corrector.eos_id])
    yield corrector
    undo()


@pytest.fixture(scope="module")
def page(corrector):
    with running(create_app(lambda: corrector, examples_file=DEMO)) as url:
        wait_ready(url)
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.set_default_timeout(20_000)
            page.goto(url)
            page.wait_for_selector("body[data-ready=true]")
            yield page
            browser.close()


def correct_on_page(page, task: str, text: str) -> None:
    page.select_option("#task", task)
    page.fill("#hypotheses", text)
    page.click("#correct")
    page.wait_for_selector("#results .correction, #error:not(:empty)")


def test_pasted_hypotheses_show_the_correction_with_changed_words_marked(page, corrector):
    correct_on_page(page, "asr", "the cat sad\nthe cat")
    [expected] = corrector.correct([["the cat sad", "the cat"]], task="asr")
    assert (expected.text, expected.fell_back) == ("the cat sat", False)
    assert page.text_content(".correction-text") == "the cat sat"
    assert page.locator(".correction-text ins.changed").all_text_contents() == ["sat"]
    assert page.locator(".correction del.changed").all_text_contents() == ["sad"]
    assert page.text_content(".gate") == "the gate accepted the model's correction"


def test_a_blank_line_separates_inputs(page):
    correct_on_page(page, "tec", "the cat sad\n\nthe cat sat")
    assert page.locator(".correction").count() == 2
    gates = page.locator(".gate").all_text_contents()
    assert gates == ["the gate accepted the model's correction", "the model kept the 1-best unchanged"]


def test_a_picked_example_shows_its_reference_and_that_the_gate_kept_the_1_best(page, corrector):
    examples = read_examples(DEMO)
    index, example = next((i, e) for i, e in enumerate(examples) if e.task == "ocr")
    page.select_option("#example", str(index))
    assert page.input_value("#task") == "ocr"
    assert page.input_value("#hypotheses") == "\n".join(example.hypotheses)
    page.click("#correct")
    page.wait_for_selector("#results .correction")
    [expected] = corrector.correct([example])
    assert expected.fell_back  # "the cat sat" is no correction of this page of text
    assert page.text_content(".correction-text") == expected.text
    assert page.locator(".correction-text ins.changed").count() == 0
    assert page.text_content(".gate") == f"the gate kept the 1-best ({expected.reason})"
    assert example.reference in page.text_content(".correction")


def test_a_rerank_decision_names_the_hypothesis_the_gate_picked(page, corrector):
    hypotheses = ["she sells sea shells", "the cat sat on the mat"]
    [expected] = corrector.correct([hypotheses], task="st")
    assert (expected.decision, expected.text, expected.reason) == ("rerank", hypotheses[1], "gate closed")
    correct_on_page(page, "st", "\n".join(hypotheses))
    assert page.text_content(".correction-text") == "the cat sat on the mat"
    picked = "the gate picked hypothesis 2, the one the model ranks first (gate closed)"
    assert page.text_content(".gate.picked") == picked


def test_a_refused_request_shows_the_servers_message(page):
    correct_on_page(page, "asr", "x" * 2001)
    assert page.text_content("#error") == "422: inputs[0].hypotheses[0]: 2001 characters, the limit is 2000"
    assert page.locator("#results .correction").count() == 0
