# Two commands do everything on a fresh machine: `make demo` and `make test`.
# The virtualenv lives outside the clone, keyed by requirements.lock (scripts/env.sh).
SHELL := /bin/bash
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TF_CPP_MIN_LOG_LEVEL := 2
export RASA_TELEMETRY_ENABLED := false
export PYTHONPATH := $(CURDIR)

.PHONY: demo test chat train bench env train-text train-voice train-face train-fusion dashboard

demo:  ## Redis + trained demo bot + action server + Rasa with Toneline
	@venv="$$(./scripts/env.sh)" && $$venv/bin/python -m scripts.stack demo

test:  ## lint, type-check and the whole test suite
	@venv="$$(./scripts/env.sh)" && $$venv/bin/ruff check . && $$venv/bin/ruff format --check . && \
	  $$venv/bin/mypy && \
	  $$venv/bin/python -m pytest

chat:  ## talk to the running demo bot in this terminal
	@venv="$$(./scripts/env.sh)" && $$venv/bin/python -m scripts.chat

train:  ## train the demo bot's Rasa model if its inputs changed
	@venv="$$(./scripts/env.sh)" && $$venv/bin/python -m scripts.stack train

train-text:  ## retrain the text emotion head (needs ../shared/data)
	@venv="$$(./scripts/env.sh)" && $$venv/bin/python -m models.recipes.text.train

train-voice:  ## recompute voice features and retrain the voice head (needs ../shared/data; features are cached, training takes about 20 minutes on 2 cores)
	@venv="$$(./scripts/env.sh)" && $$venv/bin/python -m models.recipes.voice.features && $$venv/bin/python -m models.recipes.voice.train

train-face:  ## retrain the facial expression CNN on FER2013 (needs ../shared/data; about 25 minutes for 14 epochs on one core)
	@venv="$$(./scripts/env.sh)" && $$venv/bin/python -m models.recipes.face.train --epochs 14 --threads 1

train-fusion:  ## refit the attention fusion (needs ../shared/data and the voice CV's out-of-fold logits: make train-voice, or python -m models.recipes.voice.train --no-export)
	@venv="$$(./scripts/env.sh)" && $$venv/bin/python -m models.recipes.fusion.train

bench:  ## run the benchmarks in bench/
	@venv="$$(./scripts/env.sh)" && $$venv/bin/python -m bench.nlu_component && $$venv/bin/python -m bench.dashboard_live && $$venv/bin/python -m bench.telephony && $$venv/bin/python -m bench.voice --repeats 10 && $$venv/bin/python -m bench.fusion && $$venv/bin/python -m bench.face && $$venv/bin/python -m bench.video_session

env:  ## create the virtualenv only; prints its path
	@./scripts/env.sh

dashboard:  ## only the supervisor dashboard (needs Redis; set TONELINE_DASHBOARD_PASSWORD)
	@venv="$$(./scripts/env.sh)" && $$venv/bin/python -m plugin.analytics serve
