# Shell functions the scripts share; a script sources it from the repository root: . scripts/lib.sh

# model_tasks DIR: the tasks of model directory DIR (its neko.json "tasks"), separated by spaces.
model_tasks() {
  python3 -c 'import json, sys; print(" ".join(json.load(open(sys.argv[1]))["tasks"]))' "$1/neko.json"
}
