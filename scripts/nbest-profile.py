"""What an N-best corpus looks like: 1-best errors by kind and place, and how the hypotheses differ.

    PYTHONPATH=$PWD .venv/bin/python scripts/nbest-profile.py ../shared/corpora/hyporadise/train_atis.json
    PYTHONPATH=$PWD .venv/bin/python scripts/nbest-profile.py data/asr/modern-train.jsonl.gz

Reads any format neko reads (HyPoradise JSON, neko JSONL). Words are compared as written (both
HyPoradise and neko's spoken-form references are lowercase without punctuation), so a number written
"25" for "twenty five" counts as an error here. An error region is a maximal run of non-matching
aligned words (jiwer's alignment of the 1-best to the reference); its kind is the first that fits:
split/merge (same letters, other word boundaries or hyphens), number, contraction, homophone (a
shared pronunciation in pocketsphinx's CMU dictionary), near-homophone (one phone apart), inflection
(one word a prefix of the other, at most 3 letters longer), function word (every word of both sides
is a function word), other. Positions are the region's first reference word over the sentence
length, in fifths. Never run it on a test file to tune anything: the HyPoradise test files are
test data.
"""

from __future__ import annotations

import argparse
import itertools
from collections import Counter
from statistics import mean

import jiwer

from neko.data.builders.lexicon import FUNCTION_WORDS, is_number_token, pronunciations
from neko.data.formats import read_examples

KINDS = (
    "split/merge",
    "number",
    "contraction",
    "homophone",
    "near-homophone",
    "inflection",
    "function word",
    "other",
)


def regions(reference: list[str], hypothesis: list[str]) -> list[tuple[int, list[str], list[str]]]:
    """(reference start, reference words, hypothesis words) of each run of non-matching words."""
    found: list[tuple[int, list[str], list[str]]] = []
    if not reference:
        return [(0, [], hypothesis)] if hypothesis else []
    output = jiwer.process_words(" ".join(reference), " ".join(hypothesis) or "<empty>")
    previous_end = previous_end_hyp = None
    for chunk in output.alignments[0]:
        if chunk.type == "equal":
            continue
        ref = reference[chunk.ref_start_idx : chunk.ref_end_idx]
        hyp = hypothesis[chunk.hyp_start_idx : chunk.hyp_end_idx] if hypothesis else []
        if found and previous_end == chunk.ref_start_idx and previous_end_hyp == chunk.hyp_start_idx:
            start, old_ref, old_hyp = found[-1]
            found[-1] = (start, old_ref + ref, old_hyp + hyp)
        else:
            found.append((chunk.ref_start_idx, ref, hyp))
        previous_end, previous_end_hyp = chunk.ref_end_idx, chunk.hyp_end_idx
    return found


def _phone_distance_one(a: str, b: str, prons: dict) -> bool:
    for x in prons.get(a, ()):
        for y in prons.get(b, ()):
            if abs(len(x) - len(y)) <= 1 and _levenshtein(x, y) <= 1:
                return True
    return False


def _levenshtein(a: tuple | list | str, b: tuple | list | str) -> int:
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        previous, row[0] = row[0], i
        for j, y in enumerate(b, start=1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (x != y))
    return row[-1]


def kind_of(ref: list[str], hyp: list[str], prons: dict) -> str:
    joined_ref, joined_hyp = "".join(ref).replace("-", ""), "".join(hyp).replace("-", "")
    if joined_ref == joined_hyp:
        return "split/merge"
    if any(is_number_token(w) or any(c.isdigit() for c in w) for w in ref + hyp):
        return "number"
    if any("'" in w for w in ref + hyp):
        return "contraction"
    if len(ref) == len(hyp) == 1:
        a, b = ref[0], hyp[0]
        if prons.get(a, frozenset()) & prons.get(b, frozenset()):
            return "homophone"
        if _phone_distance_one(a, b, prons):
            return "near-homophone"
        short, long = sorted((a, b), key=len)
        if len(short) >= 3 and long.startswith(short) and len(long) - len(short) <= 3:
            return "inflection"
    if all(w in FUNCTION_WORDS for w in ref + hyp):
        return "function word"
    return "other"


def _share(part: float, whole: float) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def profile(path: str) -> None:
    examples = [e for e in read_examples(path, task="asr") if e.reference is not None]
    prons = pronunciations()
    ref_words = errors = oracle_errors = 0
    ops: Counter[str] = Counter()
    per_sentence: Counter[int] = Counter()
    kinds: Counter[str] = Counter()
    kind_words: Counter[str] = Counter()
    places: Counter[int] = Counter()
    diff_places: Counter[int] = Counter()
    words_by_kind: dict[str, Counter[str]] = {k: Counter() for k in KINDS}
    distinct: Counter[int] = Counter()
    distinct_by_errors: dict[int, list[int]] = {k: [] for k in range(4)}
    counts: Counter[int] = Counter()
    to_best: dict[int, list[int]] = {k: [] for k in range(1, 5)}
    among_rest: list[int] = []
    differing: list[int] = []
    for example in examples:
        reference = example.reference.split()
        hypotheses = [h.split() for h in example.hypotheses]
        best = hypotheses[0]
        output = jiwer.process_words(" ".join(reference), " ".join(best) or "<empty>")
        wrong = output.substitutions + output.deletions + output.insertions
        ref_words += len(reference)
        errors += wrong
        ops.update(s=output.substitutions, d=output.deletions, i=output.insertions)
        per_sentence[min(wrong, 4)] += 1
        oracle_errors += min(_levenshtein(reference, h) for h in hypotheses)
        for start, ref, hyp in regions(reference, best):
            kind = kind_of(ref, hyp, prons)
            kinds[kind] += 1
            kind_words[kind] += max(len(ref), len(hyp))
            words_by_kind[kind][f"{' '.join(ref) or '-'} > {' '.join(hyp) or '-'}"] += 1
            places[min(4, 5 * start // max(1, len(reference)))] += 1
        counts[len(hypotheses)] += 1
        distinct[len({tuple(h) for h in hypotheses})] += 1
        distinct_by_errors[min(wrong, 3)].append(len({tuple(h) for h in hypotheses}))
        differing.append(sum(h != best for h in hypotheses[1:]))
        for k, hyp in enumerate(hypotheses[1:5], start=1):
            to_best[k].append(_levenshtein(best, hyp))
            for start, _, _ in regions(best, hyp):
                diff_places[min(4, 5 * start // max(1, len(best)))] += 1
        rest = hypotheses[1:5]
        among_rest += [_levenshtein(a, b) for a, b in itertools.combinations(rest, 2)]
    n = len(examples)
    print(f"# {path}: {n} N-best lists, {ref_words} reference words ({ref_words / n:.2f} per sentence)")
    print(f"hypotheses per list: {dict(sorted(counts.items()))}")
    wer, oracle = 100 * errors / ref_words, 100 * oracle_errors / ref_words
    print(f"1-best WER: {wer:.2f}%, N-best oracle WER: {oracle:.2f}%")
    total_ops = sum(ops.values())
    print(
        f"1-best errors: substitutions {_share(ops['s'], total_ops)}, "
        f"deletions {_share(ops['d'], total_ops)}, insertions {_share(ops['i'], total_ops)}"
    )
    labels = {0: "0", 1: "1", 2: "2", 3: "3", 4: "4+"}
    print(
        "sentences by 1-best errors: "
        + ", ".join(f"{labels[k]}: {_share(per_sentence[k], n)}" for k in sorted(per_sentence))
    )
    print(
        "distinct hypotheses per list: "
        + ", ".join(f"{k}: {_share(distinct[k], n)}" for k in sorted(distinct))
        + f" (mean {sum(k * v for k, v in distinct.items()) / n:.2f})"
    )
    clean_lists, other_lists = distinct_by_errors[0], [d for k in (1, 2, 3) for d in distinct_by_errors[k]]
    print(
        "mean distinct hypotheses by 1-best errors (0, 1, 2, 3+): "
        + ", ".join(f"{mean(v):.2f}" for v in distinct_by_errors.values() if v)
        + f"; all five identical in {_share(clean_lists.count(1), len(clean_lists))} of the error-free lists"
        + f" and {_share(other_lists.count(1), len(other_lists))} of the others"
    )
    print(f"hypotheses 2-5 that differ from the 1-best: {mean(differing):.2f} per list")
    print(
        "word edit distance to the 1-best, hypothesis 2..5: "
        + ", ".join(f"{mean(v):.2f}" for v in to_best.values() if v)
    )
    print(f"word edit distance among hypotheses 2-5 (pairs): {mean(among_rest):.2f}" if among_rest else "")
    total_places = sum(diff_places.values())
    print(
        "where hypotheses 2-5 differ from the 1-best (fifths of the sentence): "
        + ", ".join(_share(diff_places[k], total_places) for k in range(5))
    )
    total_regions = sum(kinds.values())
    print(
        "where the 1-best errs (fifths of the sentence): "
        + ", ".join(_share(places[k], total_regions) for k in range(5))
    )
    print(f"1-best error regions: {total_regions} ({total_regions / n:.2f} per sentence)")
    print("| kind | regions | share | words | most frequent (reference > 1-best) |")
    print("|---|---:|---:|---:|---|")
    for kind in KINDS:
        common = "; ".join(f"{pair} ({c})" for pair, c in words_by_kind[kind].most_common(5))
        share = _share(kinds[kind], total_regions)
        print(f"| {kind} | {kinds[kind]} | {share} | {kind_words[kind]} | {common} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+")
    for path in parser.parse_args().files:
        profile(path)


if __name__ == "__main__":
    main()
