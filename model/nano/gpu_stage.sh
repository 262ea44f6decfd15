#!/bin/sh
# One training stage of the embedded nano model on a lent GPU (issue 23), continuing from the
# shipped weights; the checkpoint and the log land in $OUT/nano (model.safetensors ~9 MB).
#
# The device machine has PyTorch, jinja2, safetensors and tiktoken, not pydantic. Here, once:
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#     -d .whl pydantic pydantic-core annotated-types typing-inspection typing-extensions
# then the device call (minutes of training as the argument; setup ~1 min):
#   run(command="sh model/nano/gpu_stage.sh 6", carry=[".whl"], timeout_s=600)
# Rehearsed on a CPU:  DEVICE=cpu WORKERS=1 BATCH=4 OUT=/tmp/stage sh model/nano/gpu_stage.sh 0.2
# Then evaluate here (python -m agent.model.nano.evaluate --model DIR --handwritten, and
# --copy-probe: the agent's own dependencies are not on the device machine) before shipping; the batch is 20x the CPU recipe's, hence the higher peak learning rate.
set -eu
minutes=${1:-6}
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site
fi
python3 -c "import agent.model.nano" 2>/dev/null ||
  python3 -m pip install -q --no-index --no-deps --no-build-isolation -e .
init=${INIT:-model/nano}  # INIT=none: a new model, its sizes in EXTRA (--hidden 256 ...)
[ "$init" = none ] && init_args="" || init_args="--init $init"
# shellcheck disable=SC2086  # word splitting of init_args and EXTRA is meant
python3 -m agent.model.nano.train --out "$OUT/nano" $init_args ${EXTRA:-} \
  --device "${DEVICE:-cuda}" --bf16 --workers "${WORKERS:-14}" --batch "${BATCH:-256}" \
  --realistic 0.8 --sessions 0.3 --efforts 0.6,0.25,0.15 --seed "${SEED:-40}" --steps 0 \
  --minutes "$minutes" --quant-from 0 --lr "${LR:-3e-3}" --save-every 2 --log-every 10
