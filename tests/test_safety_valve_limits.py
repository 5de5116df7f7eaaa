"""The safety valve's thresholds hold exactly where `neko.correct.safety` says they do: each limit is
checked on both sides of its boundary (found by mutation testing of safety.py)."""

from __future__ import annotations

import random

import pytest

from neko.correct.safety import SafetyValve, longest_run

LENGTHS_ONLY = SafetyValve(max_edit_rate=None)


@pytest.mark.parametrize(
    ("output", "best", "reason"),
    [
        # at least 16 characters of one unit (<= 10 characters) repeated 4 or more times
        ("abcdabcdabcdabcd", "abcd efgh ijkl mnop", "looping"),  # 4 x 4 = 16 characters
        ("abcabcabcabcabc", "abcabcabcabcabd", None),  # 5 x 3 = 15 characters: too few
        ("abcdefghij" * 4, "abcdefghij abcdefghij abcdefghij abcdefghij", "looping"),  # a 10-character unit
        ("abcdefghijk" * 4, "abcdefghijk abcdefghijk abcdefghijk abcdefghij", None),  # 11: too long a unit
        ("hahahahahahahaha", "hahahahahahahaha", None),  # no longer a run than the 1-best has
        # a word n-gram (n <= 8) three times back to back
        (" ".join(["one two three four five six seven eight"] * 3), "one two three four five", "looping"),
        (
            " ".join(["one two three four five six seven eight nine"] * 3),
            " ".join(["one two three four five six seven eight nine"] * 2 + ["one two three four five"]),
            None,  # a 9-gram is not counted
        ),
    ],
)
def test_loops_are_counted_within_their_limits(output, best, reason):
    assert LENGTHS_ONLY.check(output, best) == reason


@pytest.mark.parametrize(
    ("output", "best", "reason"),
    [
        ("x" * 10, "y" * 30, None),  # 0.5 * 30 - 5 = 10 characters is long enough
        ("x" * 9, "y" * 30, "too short"),
        ("abcdefghijklmnopqrstuvwxy", "0123456789", None),  # 2 * 10 + 5 = 25 characters is short enough
        ("abcdefghijklmnopqrstuvwxyz", "0123456789", "too long"),
    ],
)
def test_length_limits_are_inclusive(output, best, reason):
    assert LENGTHS_ONLY.check(output, best) == reason


def test_an_output_is_unrelated_only_past_the_edit_rate_times_the_hypothesis_length():
    hypothesis = "abcdefghijklmnopqrst"  # 20 characters: 0.5 * 20 + 5 = 15 edits are allowed
    valve = SafetyValve()
    assert not valve.unrelated("ABCDEFGHIJKLMNOpqrst", [hypothesis])  # 15 substitutions
    assert valve.unrelated("ABCDEFGHIJKLMNOPqrst", [hypothesis])  # 16


def test_longest_run_counts_a_single_unit_once_and_restarts_after_a_break():
    assert longest_run("abc", 3) == 1
    assert longest_run("abb", 1) == 2
    assert longest_run("aabaa", 1) == 2


def _fewest_edits_to_a_start(reference: str, prefix: str) -> int:
    """The fewest character edits from any start of `reference` to `prefix`: the last row of the
    full edit-distance table, by the textbook recurrence."""
    row = list(range(len(reference) + 1))
    for char in prefix:
        previous, row = row, [row[0] + 1]
        for j, ref_char in enumerate(reference, start=1):
            row.append(min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (ref_char != char)))
    return min(row)


@pytest.mark.parametrize("max_edit_rate", [0.0, 0.2, 0.5])
def test_a_certain_refusal_holds_whatever_follows_and_is_found_as_soon_as_it_is_certain(max_edit_rate):
    """`certain_refusal` speaks exactly when the prefix is too long or out of reach of every
    hypothesis (by brute force), and then `check` refuses every continuation."""
    valve = SafetyValve(max_edit_rate=max_edit_rate)
    rng = random.Random(7)
    alphabet = "ab c"
    refused = 0
    for _ in range(300):
        hypotheses = ["".join(rng.choices(alphabet, k=rng.randint(1, 14))) for _ in range(rng.randint(1, 3))]
        best, prefix = hypotheses[0].strip(), "".join(rng.choices(alphabet, k=rng.randint(0, 20))).strip()
        references = [h for h in (best, *hypotheses) if h.strip()]
        out_of_reach = all(
            _fewest_edits_to_a_start(h.strip(), prefix) > max_edit_rate * len(h) + valve.length_slack
            for h in references
        )
        expected = None
        if prefix and len(prefix) > valve.max_ratio * len(best) + valve.length_slack:
            expected = "too long"
        elif prefix and references and out_of_reach:
            expected = "unrelated"
        assert valve.certain_refusal(prefix, hypotheses[0], hypotheses) == expected
        if expected is not None:
            refused += 1
            for _ in range(5):
                rest = "".join(rng.choices(alphabet, k=rng.randint(0, 10)))
                assert valve.check(prefix + rest, hypotheses[0], True, hypotheses) is not None
    assert refused > 20


def test_no_certain_refusal_while_a_hypothesis_is_within_reach():
    valve = SafetyValve(max_edit_rate=0.0)
    best = "the cat sat on the mat"
    assert valve.certain_refusal("the cat sad on", best, [best]) is None
    assert valve.certain_refusal("", best, [best]) is None
    assert valve.certain_refusal("a dog barked loudly at", best, [best]) == "unrelated"
    assert valve.certain_refusal("x" * 50, best, [best]) == "too long"
    assert SafetyValve(max_edit_rate=None).certain_refusal("a dog barked loudly at", best, [best]) is None
