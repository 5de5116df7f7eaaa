"""The README's Python example of the routing core runs as written."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_routing_example_runs_and_shows_each_task_using_its_expert():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    example = next(block for block in blocks if "apply_task_guidance" in block)
    result = subprocess.run([sys.executable, "-c", example], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    mapping = ast.literal_eval(lines[0].removeprefix("f(T): "))
    for line in lines[1:]:
        counts = ast.literal_eval(line.split(": ", 1)[1])
        for task, expert in mapping.items():
            assert counts[task][expert] == 12  # every one of the row's 12 tokens used f(T)
            assert sum(counts[task]) == 24  # and exactly one other expert
