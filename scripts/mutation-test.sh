#!/usr/bin/env bash
# Mutation testing with mutmut: change one operator, constant or call of neko's core at a time and
# check that some test fails. Not part of CI (the full run takes hours on a small CPU machine).
#
#   bash scripts/mutation-test.sh                          # every module of [tool.mutmut] only_mutate
#   bash scripts/mutation-test.sh neko/correct/safety.py -- tests/test_correct.py -k "valve or run"
#
# Modules (paths or globs) narrow `only_mutate`; what follows `--` replaces the test selection
# (pytest arguments, default: tests). The run happens in a scratch copy of the repository
# ($NEKO_MUTATION_DIR, default ${TMPDIR:-/tmp}/neko-mutation, started afresh each time), with
# $NEKO_MUTATION_JOBS (default 2) niced workers and the interpreter $PYTHON (default .venv/bin/python).
# It ends with the survivors and the score: killed (timeouts included) / all mutants, where mutants
# that no test reaches count as survivors.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-$root/.venv/bin/python}"
scratch="${NEKO_MUTATION_DIR:-${TMPDIR:-/tmp}/neko-mutation}"
jobs="${NEKO_MUTATION_JOBS:-2}"
mutmut="$(dirname "$python")/mutmut"
[ -x "$mutmut" ] || { echo "error: $mutmut not found; run: bash scripts/setup.sh --dev" >&2; exit 2; }

modules=()
tests=()
while [ $# -gt 0 ]; do
  if [ "$1" = "--" ]; then shift; tests=("$@"); break; fi
  modules+=("$1"); shift
done

rm -rf "$scratch" && mkdir -p "$scratch"
git -C "$root" ls-files -z -- . ':!data' ':!reports' ':!models' \
  | (cd "$root" && tar --null -T - -cf -) | tar -xf - -C "$scratch"

"$python" - "$scratch/pyproject.toml" "${#modules[@]}" "${modules[@]}" "${tests[@]}" <<'EOF'
"""Rewrite the copy's [tool.mutmut] table with the modules and tests asked for."""
import json
import sys
import tomllib
from pathlib import Path

path, count = Path(sys.argv[1]), int(sys.argv[2])
modules, tests = sys.argv[3 : 3 + count], sys.argv[3 + count :]
text = path.read_text()
settings = tomllib.loads(text)["tool"]["mutmut"]
settings["only_mutate"] = modules or settings["only_mutate"]
settings["pytest_add_cli_args_test_selection"] = tests or settings["pytest_add_cli_args_test_selection"]
settings["use_git_change_detection"] = False  # the copy is not a git repository
start = text.index("[tool.mutmut]")
end = text.find("\n[", start + 1)
table = "[tool.mutmut]\n" + "".join(f"{key} = {json.dumps(value)}\n" for key, value in settings.items())
path.write_text(text[:start] + table + (text[end + 1 :] if end >= 0 else ""))
print("mutating:", ", ".join(settings["only_mutate"]))
print("tests:", " ".join(settings["pytest_add_cli_args_test_selection"]))
EOF

cd "$scratch"
export OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=1
nice -n 10 "$mutmut" run --max-children "$jobs" || echo "mutmut run stopped with status $?" >&2
"$mutmut" results || true
"$mutmut" export-cicd-stats >/dev/null
"$python" - mutants/mutmut-cicd-stats.json <<'EOF'
import json
import sys

stats = json.load(open(sys.argv[1]))
killed = stats["killed"] + stats["timeout"]
counted = killed + stats["survived"] + stats["no_tests"] + stats["suspicious"]
score = 100 * killed / counted if counted else float("nan")
print(
    f"mutation score: {score:.1f}% ({killed} killed of {counted}; {stats['survived']} survived, "
    f"{stats['no_tests']} reached by no test, {stats['timeout']} timeouts counted as killed, "
    f"{stats['total'] - counted} not checked)"
)
EOF
