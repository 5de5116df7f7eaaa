"""OCR data: a text line rendered with a Debian font, degraded with Pillow, read by tesseract.

Font families are the font packages (`dejavu`, `liberation`, `noto`, ...); `linux-libertine` is held
out for test only (zero-shot). The zero-shot dev file (`--zero-shot`) shows the gate tuning what an
unseen font and unseen text look like without touching a test file: a family no other file uses
(`ebgaramond`) and text sources no builder trains on (`gcide`, `manpages`).

Degradations (the dataset's last part): `clean` (mild), `blur`, `noise`, `lowres` (down-sampling),
`jpeg`, `rotate` (slight); every image also gets mild random contrast. Hypotheses: tesseract
(`--psm 7`, LSTM) on three renderings of the degraded line (as is, 2x up-sampled, binarised),
distinct, ordered by tesseract's mean word confidence.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

from neko.data.builders.common import (
    SOURCES,
    ZERO_SHOT_SOURCE,
    Job,
    assign_sentences,
    example_id,
    interleave,
    job_rng,
)
from neko.data.schema import Example
from neko.data.splits import check_split_name
from neko.errors import NekoError

FONT_DIRS = (Path("/usr/share/fonts/truetype"), Path("/usr/share/fonts/opentype"))
HELD_OUT_FAMILY = "linux-libertine"
ZERO_SHOT_DEV_FAMILY = "ebgaramond"
ZERO_SHOT_DEV_SOURCES = {"gcide": 1, "manpages": 1}
ZERO_SHOT_SOURCES = {ZERO_SHOT_SOURCE, *ZERO_SHOT_DEV_SOURCES}
DEGRADATIONS = ("clean", "blur", "noise", "lowres", "jpeg", "rotate")
_SKIP_FONT = re.compile(r"Symbol|Dingbat|D050000L|Math|Emoji|Z003", re.I)
_NOTO_LATIN = re.compile(r"^Noto(Sans|Serif)(Display)?-")


@cache
def font_families() -> dict[str, list[str]]:
    """Font files with Latin glyphs by family (the font package's folder), sorted."""
    families: dict[str, list[str]] = {}
    for base in FONT_DIRS:
        for path in sorted(base.rglob("*")):
            if path.suffix.lower() not in (".ttf", ".otf") or _SKIP_FONT.search(path.name):
                continue
            family = path.relative_to(base).parts[0]
            if family == "noto" and not _NOTO_LATIN.match(path.name):
                continue
            families.setdefault(family, []).append(str(path))
    return families


def families_for(split: str, zero_shot: bool = False) -> list[str]:
    """The font families of a file: the zero-shot dev family alone, or every other installed one
    (less the test-only family outside test)."""
    names = sorted(font_families())
    if zero_shot:
        return [n for n in names if n == ZERO_SHOT_DEV_FAMILY]
    held_out = {ZERO_SHOT_DEV_FAMILY} | ({HELD_OUT_FAMILY} if split != "test" else set())
    return [n for n in names if n not in held_out]


def plan(split: str, count: int, seed: int, zero_shot: bool = False) -> list[Job]:
    """The jobs of a split's file, or of the zero-shot dev file (`zero_shot`, split `dev`)."""
    check_split_name(split)
    if zero_shot and split != "dev":
        raise NekoError(f"the zero-shot OCR file is a dev file; got --split {split}")
    families = families_for(split, zero_shot)
    if not families:
        wanted = "fonts-ebgaramond" if zero_shot else "fonts-dejavu-core and the other fonts-*"
        raise NekoError(f"no fonts for this file under /usr/share/fonts; install {wanted} (scripts/setup.sh)")
    sources = ZERO_SHOT_DEV_SOURCES if zero_shot else SOURCES[split]
    label = "zero-shot-dev" if zero_shot else split
    chosen = assign_sentences("ocr", split, seed, interleave(sources), count)
    jobs = []
    for index, sentence in enumerate(chosen):
        rng = job_rng(seed, "ocr", label, index)
        family = families[rng.randrange(len(families))]
        fonts = font_families()[family]
        degradation = DEGRADATIONS[rng.randrange(len(DEGRADATIONS))]
        params = {
            "text": sentence.text,
            "text_id": sentence.id,
            "source": sentence.source,
            "family": family,
            "font": fonts[rng.randrange(len(fonts))],
            "degradation": degradation,
            "size": rng.randint(14, 26),
            "render_seed": rng.randrange(2**31),
        }
        jobs.append(Job(index, example_id("ocr", label, seed, index), params))
    return jobs


def render(text: str, font_path: str, size: int, degradation: str, seed: int) -> tuple[Any, dict[str, Any]]:
    """A degraded grayscale image of the line, and the degradation's parameters."""
    import random

    import numpy as np
    from PIL import Image, ImageDraw, ImageFilter, ImageFont

    rng = random.Random(seed)
    font = ImageFont.truetype(font_path, size)
    left, top, right, bottom = font.getbbox(text)
    pad = rng.randint(6, 20)
    paper, ink = rng.randint(215, 255), rng.randint(0, 60)
    image = Image.new("L", (right - left + 2 * pad, bottom - top + 2 * pad), paper)
    ImageDraw.Draw(image).text((pad - left, pad - top), text, font=font, fill=ink)
    info: dict[str, Any] = {"paper": paper, "ink": ink}
    if degradation == "clean":
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.4, 0.9)))
    elif degradation == "blur":
        radius = rng.uniform(1.8, 2.6) * size / 24
        info["blur_radius"] = round(radius, 2)
        image = image.filter(ImageFilter.GaussianBlur(radius))
    elif degradation == "noise":
        sigma = rng.uniform(40, 75)
        info["noise_sigma"] = round(sigma, 1)
        pixels = np.asarray(image, dtype=np.float64)
        pixels += np.random.default_rng(seed).normal(0, sigma, pixels.shape)
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    elif degradation == "lowres":
        factor = rng.uniform(0.24, 0.32) * 24 / size
        info["downsample"] = round(factor, 2)
        small = image.resize(
            (max(1, int(image.width * factor)), max(1, int(image.height * factor))), Image.BILINEAR
        )
        image = small.resize(image.size, Image.BILINEAR) if rng.random() < 0.5 else small
    elif degradation == "jpeg":
        quality = rng.randint(8, 20)
        factor = rng.uniform(0.55, 0.75)
        info.update(jpeg_quality=quality, downsample=round(factor, 2))
        image = image.resize((int(image.width * factor), int(image.height * factor)), Image.BILINEAR)
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=quality)
        image = Image.open(io.BytesIO(buffer.getvalue())).convert("L")
    elif degradation == "rotate":
        angle = rng.choice([-1, 1]) * rng.uniform(2.0, 5.0)
        info["angle"] = round(angle, 2)
        image = image.rotate(angle, resample=Image.BICUBIC, expand=True, fillcolor=paper)
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.6, 1.2)))
    return image, info


def variants(image: Any) -> dict[str, Any]:
    """The renderings tesseract reads: as is, 2x up-sampled, binarised at the mid grey level."""
    import numpy as np
    from PIL import Image

    pixels = np.asarray(image)
    threshold = (int(pixels.min()) + int(pixels.max())) / 2
    binary = Image.fromarray(np.where(pixels > threshold, 255, 0).astype(np.uint8))
    return {
        "raw": image,
        "upsampled": image.resize((image.width * 2, image.height * 2), Image.LANCZOS),
        "binarised": binary,
    }


class OcrState:
    def __init__(self) -> None:
        self.scratch = Path(tempfile.mkdtemp(prefix="neko-ocr-"))


def setup() -> OcrState:
    return OcrState()


def read_lines(paths: list[Path], scratch: Path) -> list[tuple[str, float] | None]:
    """Tesseract's text and mean word confidence of each image, in one tesseract run; None for an image
    tesseract crashes on (it dies with SIGFPE on a rare degraded rendering): when the run fails, each
    image is read alone to find which."""
    try:
        return _tesseract(paths, scratch)
    except subprocess.CalledProcessError:
        if len(paths) == 1:
            return [None]
        return [reading for path in paths for reading in read_lines([path], scratch)]


def _tesseract(paths: list[Path], scratch: Path) -> list[tuple[str, float]]:
    listing = scratch / "images.txt"
    listing.write_text("".join(f"{p}\n" for p in paths), encoding="utf-8")
    environment = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    result = subprocess.run(
        ["tesseract", str(listing), "stdout", "--psm", "7", "-l", "eng", "tsv"],
        capture_output=True,
        text=True,
        check=True,
        env=environment,
    )
    words: dict[int, list[tuple[str, float]]] = {k: [] for k in range(1, len(paths) + 1)}
    for line in result.stdout.splitlines()[1:]:
        columns = line.split("\t")
        if len(columns) == 12 and columns[0] == "5" and columns[11].strip():
            words[int(columns[1])].append((columns[11].strip(), float(columns[10])))
    return [
        (" ".join(w for w, _ in ws), sum(c for _, c in ws) / len(ws) if ws else 0.0)
        for _, ws in sorted(words.items())
    ]


def work(state: OcrState, job: Job) -> Example:
    p = job.params
    image, info = render(p["text"], p["font"], p["size"], p["degradation"], p["render_seed"])
    renderings = variants(image)
    paths = []
    for name, picture in renderings.items():
        path = state.scratch / f"{name}.png"
        picture.save(path)
        paths.append(path)
    readings = dict(zip(renderings, read_lines(paths, state.scratch), strict=True))
    crashed = [kind for kind, reading in readings.items() if reading is None]
    if len(crashed) == len(readings):
        raise RuntimeError(f"tesseract crashed on every rendering of {job.id} ({p['font']})")
    ranked = sorted(
        ((kind, reading) for kind, reading in readings.items() if reading is not None),
        key=lambda item: -item[1][1],
    )
    hypotheses, confidences, kinds = [], [], []
    for kind, (text, confidence) in ranked:
        if text not in hypotheses:
            hypotheses.append(text)
            confidences.append(round(confidence, 2))
            kinds.append(kind)
    metadata = {
        "source": p["source"],
        "source_id": p["text_id"],
        "source_text": p["text"],
        "font": Path(p["font"]).name,
        "font_family": p["family"],
        "font_size": p["size"],
        "degradation": p["degradation"],
        **info,
        "confidences": confidences,
        "renderings": kinds,
        **({"tesseract_crashed": crashed} if crashed else {}),
        "zero_shot": p["family"] in (HELD_OUT_FAMILY, ZERO_SHOT_DEV_FAMILY)
        or p["source"] in ZERO_SHOT_SOURCES,
        "recognizer": "tesseract-5 eng --psm 7",
    }
    return Example(
        id=job.id,
        task="ocr",
        hypotheses=hypotheses,
        reference=p["text"],
        dataset=f"{p['source']}/{p['family']}/{p['degradation']}",
        metadata=metadata,
    )
