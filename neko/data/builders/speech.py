"""ASR and ST data: text -> TTS -> sox conditions -> pocketsphinx 5-best (-> apertium eng-spa).

ST speaks the English of the handbook's sentence pairs (`neko.data.parallel`); its reference is the
human Spanish of the pair.

Voices: flite kal16, slt, awb, rms; the festival slt HTS voice is held out for test only (zero-shot).
Conditions: clean; tempo 0.9/1.1 or speed 0.95/1.05 (`rate`); white or pink noise at SNR 20-30 dB
(`noise`). Audio is 16 kHz mono 16-bit; pocketsphinx uses fast settings (maxhmmpf=1500, ds=2), which
add errors that training data welcomes. Hypotheses: `hyp()` first, then distinct `nbest()` entries.
"""

from __future__ import annotations

import random
import re
import subprocess
import tempfile
import wave
from pathlib import Path
from typing import Any

import numpy as np

from neko.data.builders.common import (
    SOURCES,
    ZERO_SHOT_SOURCE,
    Job,
    assign_sentences,
    example_id,
    interleave,
    job_rng,
)
from neko.data.parallel import pairs_of
from neko.data.schema import Example
from neko.data.sources import Sentence
from neko.data.splits import check_split_name

FLITE_VOICES = ("kal16", "slt", "awb", "rms")
HELD_OUT_VOICE = "festival-slt-hts"
CONDITIONS = ("clean", "rate", "noise")
CONDITION_WEIGHTS = (0.5, 0.3, 0.2)
NBEST = 5
# Text sources per split: fortunes is a held-out text domain (test only) for every task.
ASR_SOURCES = {"train": {"captions": 5, "bible": 2, "wordnet": 2, "handbook": 1}}
ASR_SOURCES["dev"] = ASR_SOURCES["train"]
ASR_SOURCES["test"] = SOURCES["test"]
ST_DATASET = "st-handbook"
"""The id prefix of ST examples (`st-handbook-SPLIT-sSEED-INDEX`)."""
HELD_OUT_SOURCE = "handbook-held-out"
ZERO_SHOT_SOURCES = (ZERO_SHOT_SOURCE, HELD_OUT_SOURCE)


def voices_for(split: str) -> list[str]:
    names = [f"flite-{v}" for v in FLITE_VOICES]
    return [*names, HELD_OUT_VOICE] if split == "test" else names


def st_sentences(split: str, seed: int, count: int) -> list[Sentence]:
    """The first `count` handbook pairs of a split in a seeded order (all of them when fewer), as
    sentences with their translation; pairs of held-out pages have the source `handbook-held-out`."""
    pairs = pairs_of(split)
    random.Random(f"{seed}/st/{split}/handbook").shuffle(pairs)
    return [
        Sentence(p.id, p.english, HELD_OUT_SOURCE if p.zero_shot else "handbook", p.spanish)
        for p in pairs[:count]
    ]


def plan(task: str, split: str, count: int, seed: int) -> list[Job]:
    """Jobs of an `asr` or `st` build: text, voice and condition of every index."""
    check_split_name(split)
    if task == "st":
        chosen = st_sentences(split, seed, count)
    else:
        chosen = assign_sentences(task, split, seed, interleave(ASR_SOURCES[split]), count)
    voices = voices_for(split)
    jobs = []
    for index, sentence in enumerate(chosen):
        rng = job_rng(seed, task, split, index)
        voice = voices[rng.randrange(len(voices))]
        condition = rng.choices(CONDITIONS, weights=CONDITION_WEIGHTS)[0]
        if condition == "rate":
            effect = rng.choice(["tempo 0.9", "tempo 1.1", "speed 0.95", "speed 1.05"])
        elif condition == "noise":
            effect = f"{rng.choice(['white', 'pink'])} {rng.uniform(20, 30):.1f}"
        else:
            effect = ""
        params = {
            "text": sentence.text,
            "text_id": sentence.id,
            "source": sentence.source,
            "translation": sentence.translation,
            "voice": voice,
            "condition": condition,
            "effect": effect,
            "noise_seed": rng.randrange(2**31),
        }
        prefix = ST_DATASET if task == "st" else task
        jobs.append(Job(index, example_id(prefix, split, seed, index), params))
    return jobs


def spoken_form(text: str) -> str:
    """The reference of an ASR example: lowercase words, no punctuation but apostrophes."""
    text = text.lower().replace("-", " ")
    text = re.sub(r"[^a-z0-9' ]+", " ", text)
    return " ".join(w.strip("'") for w in text.split() if w.strip("'"))


class SpeechState:
    """One worker's pocketsphinx decoder and scratch folder."""

    def __init__(self) -> None:
        from pocketsphinx import Decoder

        self.decoder = Decoder(maxhmmpf=1500, ds=2, loglevel="FATAL")
        self.scratch = Path(tempfile.mkdtemp(prefix="neko-speech-"))


def setup() -> SpeechState:
    return SpeechState()


def _run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess:
    return subprocess.run(command, check=True, capture_output=True, **kwargs)


def synthesize(text: str, voice: str, effect: str, noise_seed: int, scratch: Path) -> bytes:
    """16 kHz mono 16-bit PCM of `text` read by `voice` under `effect`."""
    text_file, raw_wav, wav16 = scratch / "text.txt", scratch / "tts.wav", scratch / "16k.wav"
    text_file.write_text(text + "\n", encoding="utf-8")
    if voice == HELD_OUT_VOICE:
        _run(["text2wave", "-eval", "(voice_cmu_us_slt_arctic_hts)", str(text_file), "-o", str(raw_wav)])
    else:
        _run(["flite", "-voice", voice.removeprefix("flite-"), "-f", str(text_file), "-o", str(raw_wav)])
    command = ["sox", str(raw_wav), "-b", "16", "-c", "1", str(wav16)]
    if effect.startswith(("tempo", "speed")):
        name, factor = effect.split()
        command += [name, *(["-s"] if name == "tempo" else []), factor]
    command += ["rate", "16000"]
    _run(command)
    with wave.open(str(wav16)) as audio:
        samples = np.frombuffer(audio.readframes(audio.getnframes()), dtype=np.int16).astype(np.float64)
    if effect.startswith(("white", "pink")):
        colour, snr = effect.split()
        samples = add_noise(samples, colour, float(snr), noise_seed)
    return np.clip(samples, -32768, 32767).astype(np.int16).tobytes()


def add_noise(samples: np.ndarray, colour: str, snr_db: float, seed: int) -> np.ndarray:
    """Add white or pink (1/f) noise at `snr_db` relative to the power of the speech samples."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(len(samples))
    if colour == "pink":
        spectrum = np.fft.rfft(noise)
        spectrum /= np.sqrt(np.maximum(np.arange(len(spectrum)), 1))
        noise = np.fft.irfft(spectrum, n=len(samples))
    voiced = samples[np.abs(samples) > 0.02 * (np.abs(samples).max() + 1e-9)]
    signal_power = float(np.mean(voiced**2)) if len(voiced) else 1.0
    noise *= np.sqrt(signal_power / 10 ** (snr_db / 10) / max(float(np.mean(noise**2)), 1e-12))
    return samples + noise


def decode(decoder: Any, pcm: bytes, n: int = NBEST) -> tuple[list[str], dict[str, Any]]:
    """The 1-best and further distinct N-best hypotheses, best first, with recognizer scores."""
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
    best = decoder.hyp()
    hypotheses = [" ".join(best.hypstr.split())] if best is not None else [""]
    scores = {
        "hyp_score": best.score if best else None,
        "hyp_prob": best.prob if best else None,
        "nbest_scores": [best.score if best else None],
    }
    if best is not None:
        for entry in decoder.nbest():
            text = " ".join(entry.hypstr.split())
            if text and text not in hypotheses:
                hypotheses.append(text)
                scores["nbest_scores"].append(entry.score)
            if len(hypotheses) >= n:
                break
    scores["audio_seconds"] = round(len(pcm) / 32000, 2)
    return hypotheses, scores


def translate(texts: list[str]) -> list[str]:
    """Apertium eng-spa of each line, in one call (unknown-word marks removed)."""
    joined = "\n".join(t if t.strip() else "." for t in texts) + "\n"
    output = _run(["apertium", "-u", "eng-spa"], input=joined, text=True).stdout.rstrip("\n").split("\n")
    if len(output) != len(texts):
        output = [
            _run(["apertium", "-u", "eng-spa"], input=t + "\n", text=True).stdout.strip() for t in texts
        ]
    return [" ".join(line.split()) for line in output]


def _recognize(state: SpeechState, job: Job) -> tuple[list[str], dict[str, Any]]:
    p = job.params
    pcm = synthesize(p["text"], p["voice"], p["effect"], p["noise_seed"], state.scratch)
    hypotheses, scores = decode(state.decoder, pcm)
    metadata = {
        "source": p["source"],
        "source_id": p["text_id"],
        "source_text": p["text"],
        "voice": p["voice"],
        "condition": p["condition"],
        "effect": p["effect"],
        "zero_shot": p["voice"] == HELD_OUT_VOICE or p["source"] in ZERO_SHOT_SOURCES,
        "recognizer": "pocketsphinx-5 en-us maxhmmpf=1500 ds=2",
        **scores,
    }
    return hypotheses, metadata


def work_asr(state: SpeechState, job: Job) -> Example:
    hypotheses, metadata = _recognize(state, job)
    p = job.params
    return Example(
        id=job.id,
        task="asr",
        hypotheses=hypotheses,
        reference=spoken_form(p["text"]),
        dataset=f"{p['source']}/{p['voice']}/{p['condition']}",
        metadata=metadata,
    )


def work_st(state: SpeechState, job: Job) -> Example:
    english, metadata = _recognize(state, job)
    p = job.params
    spanish = translate([*english, p["text"]])
    hypotheses = list(dict.fromkeys(spanish[:-1]))
    metadata.update(
        {
            "english_hypotheses": english,
            "english_reference": spoken_form(p["text"]),
            "mt_of_clean_source": spanish[-1],
            "mt": "apertium eng-spa",
        }
    )
    return Example(
        id=job.id,
        task="st",
        hypotheses=hypotheses,
        reference=p["translation"],
        dataset=f"{p['source']}/{p['voice']}/{p['condition']}",
        language_pair="en-es",
        metadata=metadata,
    )


def required_tools(task: str, split: str) -> list[str]:
    tools = ["flite", "sox"] + (["text2wave"] if split == "test" else [])
    return [*tools, "apertium"] if task == "st" else tools
