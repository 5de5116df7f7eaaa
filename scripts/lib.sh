# Shell functions the scripts share; a script sources it from the repository root: . scripts/lib.sh

# model_tasks DIR: the tasks of model directory DIR (its neko.json "tasks"), separated by spaces.
model_tasks() {
  python3 -c 'import json, sys; print(" ".join(json.load(open(sys.argv[1]))["tasks"]))' "$1/neko.json"
}

# ship_model SRC DST: copy what a model directory needs (weights, configs, tokenizer, neko.json) from
# the run's folder SRC into the bundled folder DST; DST's model card and plots stay.
ship_model() {
  mkdir -p "$2"
  local file
  for file in config.json generation_config.json model.safetensors neko.json tokenizer.json tokenizer_config.json; do
    cp "$1/$file" "$2/"
  done
}

# unpark RUN PARKED: a run parked by `neko park` (committed in parked/) copied into the empty run
# folder RUN, so that `neko train --resume` continues it; RUN is left alone when it holds a run.
unpark() {
  if [ ! -f "$1/run.json" ] && [ -f "$2/run.json" ]; then
    mkdir -p "$(dirname "$1")"
    cp -r "$2" "$1"
  fi
}
