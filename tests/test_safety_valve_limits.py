"""The safety valve's thresholds hold exactly where `neko.correct.safety` says they do: each limit is
checked on both sides of its boundary (found by mutation testing of safety.py)."""

from __future__ import annotations

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
