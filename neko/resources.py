"""Where neko finds the files that live beside the code: the default model and the demo examples.

Both are files of the source checkout (`models/neko-small`, `examples/demo.jsonl`), too large or too
often regenerated to ship inside the package; so are the other bundled models, each a folder of
`models/` named by its folder (`--model neko-tiny`). Lookup order: an explicit path (`--model`,
`--examples`, `Corrector.from_pretrained(path)`), then `$NEKO_HOME` (a folder laid out like the
checkout, for an installed neko), then the checkout this code runs from. A missing file is a
one-line error naming every place looked in.
"""

from __future__ import annotations

import os
from pathlib import Path

from neko.errors import NekoError

HOME_VARIABLE = "NEKO_HOME"
CHECKOUT = Path(__file__).resolve().parents[1]
"""The folder above the package: the source checkout when neko runs from one."""
BUNDLED_MODELS = "models"
DEFAULT_MODEL_NAME = "neko-small"
DEFAULT_MODEL = f"{BUNDLED_MODELS}/{DEFAULT_MODEL_NAME}"
DEMO_EXAMPLES = "examples/demo.jsonl"
NEKO_JSON = "neko.json"
"""The file of a model directory that holds what neko needs beyond transformers
(`neko.correct.model_dir.ModelInfo`)."""


def candidates(relative: str, checkout_path: Path | None = None) -> list[Path]:
    """Where `relative` is looked for, in order: `$NEKO_HOME/relative`, then the checkout's."""
    home = os.environ.get(HOME_VARIABLE)
    places = [Path(home).expanduser() / relative] if home else []
    return [*places, checkout_path or CHECKOUT / relative]


def locate(relative: str, missing: str, hint: str, checkout_path: Path | None = None) -> Path:
    """The first of `candidates` that exists; else a `NekoError` "{missing} (looked in ...); {hint}"."""
    places = candidates(relative, checkout_path)
    found = next((place for place in places if place.exists()), None)
    if found is None:
        looked = ", ".join(str(place) for place in places)
        raise NekoError(
            f"{missing} (looked in {looked}); set ${HOME_VARIABLE} to a folder holding {relative}, or {hint}"
        )
    return found
