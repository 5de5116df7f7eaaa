"""A run folder and the identity of the run it holds, so that no run continues or ships another's weights.

`run.json` records what determines the weights: the config (less its bookkeeping: where to write,
how often to log, evaluate or save, how many threads), a fingerprint of the examples and text
trained on, and the hash of the run's tokenizer. A new run refuses a folder that holds a run unless
told to overwrite it; `--resume` refuses a folder or a checkpoint of another identity.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from neko.data.schema import Example
from neko.errors import NekoError
from neko.io import write_json
from neko.train.config import TrainConfig
from neko.train.metrics import METRICS_FILE

IDENTITY_FILE = "run.json"
MODEL_DIR = "model"
"""The finished model's folder in the run folder."""
CHECKPOINT_DIR = "checkpoints"
SNAPSHOT_DIR = "snapshots"
"""Models of an unfinished run's steps (`neko train --until`), one folder per step."""
WRITTEN = (IDENTITY_FILE, "tokenizer", CHECKPOINT_DIR, MODEL_DIR, SNAPSHOT_DIR, METRICS_FILE, "tensorboard")
"""Everything a run writes into its folder: what `--overwrite` clears (other files stay)."""
BOOKKEEPING = {
    "run": {"out_dir", "save_every", "keep_last", "log_every", "eval_every", "tensorboard", "threads"},
    "data": {"dev"},
}
"""Settings that do not change the trained weights: a run may resume with other values."""


def model_written(folder: Path) -> bool:
    """Whether `folder` holds a model a run wrote (its `config.json`)."""
    return (folder / "config.json").exists()


def recipe(config: TrainConfig) -> dict:
    """The settings that determine the weights, as JSON-ready data."""
    settings = config.model_dump(mode="json")
    for section, names in BOOKKEEPING.items():
        settings[section] = {k: v for k, v in settings[section].items() if k not in names}
    return settings


def data_fingerprint(examples: list[Example], texts: list[str]) -> str:
    """A hash of the examples and lines actually trained on (after each file's `limit`)."""
    digest = hashlib.sha256()
    for example in examples:
        digest.update(json.dumps(asdict(example), sort_keys=True, ensure_ascii=False).encode() + b"\n")
    for text in texts:
        digest.update(b"text\t" + text.encode() + b"\n")
    return digest.hexdigest()


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class Identity:
    recipe: dict
    data: str
    tokenizer: str | None = None

    @property
    def key(self) -> str:
        """One string for checkpoints to carry: equal keys, same recipe, data and tokenizer."""
        text = json.dumps([self.recipe, self.data, self.tokenizer], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def difference(self, other: Identity) -> str:
        """What differs, in a few words: the first settings that changed, or the data."""
        changed = _changed(other.recipe, self.recipe)
        if changed:
            more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
            return "the config differs: " + "; ".join(changed[:3]) + more
        if other.data != self.data:
            return "the training data differ"
        return "the tokenizer differs"


class RunDir:
    """The folder of one run (`run.out_dir`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.identity_file = path / IDENTITY_FILE
        self.tokenizer_dir = path / "tokenizer"

    def holds_run(self) -> bool:
        return any((self.path / name).exists() for name in WRITTEN)

    def finished(self) -> bool:
        """Whether the run wrote its trained model (`model/`), its last act."""
        return model_written(self.path / MODEL_DIR)

    def recorded(self) -> Identity | None:
        if not self.identity_file.exists():
            return None
        try:
            return Identity(**json.loads(self.identity_file.read_text()))
        except (json.JSONDecodeError, TypeError, UnicodeDecodeError):
            raise NekoError(
                f"{self.identity_file}: damaged; pass --overwrite to start the run over"
            ) from None

    def decide(self, identity: Identity, resume: bool, overwrite: bool) -> str:
        """`new`, `clear` (overwrite, then new) or `resume`; refuses what would mix two runs.
        Reads only, so that every process decides the same before the main one writes."""
        if resume and overwrite:
            raise NekoError("--resume and --overwrite exclude each other: continue the run or replace it")
        if not self.holds_run():
            return "new"
        if overwrite:
            return "clear"
        recorded = self.recorded()
        if not resume:
            same = (
                recorded is not None and recorded.recipe == identity.recipe and recorded.data == identity.data
            )
            what = "a run of this config" if same else "another run"
            raise NekoError(
                f"{self.path} holds {what}; pass --resume to continue it or --overwrite to replace it"
            )
        if recorded is None:
            raise NekoError(
                f"{self.path} holds a run with no {IDENTITY_FILE} to check it against; "
                "pass --overwrite to replace it"
            )
        if recorded.recipe != identity.recipe or recorded.data != identity.data:
            raise NekoError(
                f"{self.path} holds another run ({identity.difference(recorded)}); "
                "resume it with its own config or pass --overwrite to replace it"
            )
        return "resume"

    @contextmanager
    def replacing(self, replace: bool) -> Iterator[None]:
        """With `replace` (`--overwrite`), what an earlier run wrote here is set aside for the block, in
        a hidden folder beside this one: put back if the block fails (a setting found bad late, a
        full disk), deleted once it succeeds. Files neko did not write stay where they are."""
        if not replace:
            yield
            return
        aside = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.replaced.", dir=self.path.parent))
        for name in WRITTEN:
            if (self.path / name).exists() or (self.path / name).is_symlink():
                os.replace(self.path / name, aside / name)
        try:
            yield
        except BaseException:
            for name in WRITTEN:
                if (aside / name).exists() or (aside / name).is_symlink():
                    _remove(self.path / name)
                    os.replace(aside / name, self.path / name)
            raise
        finally:
            shutil.rmtree(aside, ignore_errors=True)

    def record(self, identity: Identity) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        write_json(self.identity_file, asdict(identity))

    def saved_tokenizer_hash(self) -> str | None:
        saved = self.tokenizer_dir / "tokenizer.json"
        return file_hash(saved) if saved.exists() else None


def _changed(old: dict, new: dict, prefix: str = "") -> list[str]:
    out = []
    for key in sorted(old.keys() | new.keys()):
        before, after = old.get(key), new.get(key)
        if isinstance(before, dict) and isinstance(after, dict):
            out += _changed(before, after, f"{prefix}{key}.")
        elif before != after:
            out.append(f"{prefix}{key} {json.dumps(before)} -> {json.dumps(after)}")
    return out


def _remove(path: Path) -> None:
    """A file, link or folder a new run wrote, if there is one."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
