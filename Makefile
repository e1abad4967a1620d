# Two commands do everything on a fresh machine: `make demo` and `make test`.
# The virtualenv lives outside the clone, keyed by requirements.lock (scripts/env.sh).
SHELL := /bin/bash
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TF_CPP_MIN_LOG_LEVEL := 2
export RASA_TELEMETRY_ENABLED := false
export PYTHONPATH := $(CURDIR)

.PHONY: demo test chat train bench env train-text train-text-frozen train-voice train-face train-fusion dashboard adapt

demo:  ## Redis + trained demo bot + action server + Rasa with Toneline
	@venv="$$(./scripts/env.sh)" && $$venv/bin/python -m scripts.stack demo

test:  ## lint, type-check and the whole test suite (installs the Debian packages it drives when root, else names them)
	@./scripts/system-deps.sh && venv="$$(./scripts/env.sh)" && $$venv/bin/ruff check . && $$venv/bin/ruff format --check . && \
	  $$venv/bin/mypy && \
	  $$venv/bin/python -m pytest

chat:  ## talk to the running demo bot in this terminal
	@venv="$$(./scripts/env.sh)" && $$venv/bin/python -m scripts.chat

train:  ## train the demo bot's Rasa model if its inputs changed
	@venv="$$(./scripts/env.sh)" && $$venv/bin/python -m scripts.stack train

train-text:  ## fine-tune the text model in two stages (LoRA on MiniLM, dialogue context), then refit its head for everyday conversation (issue 18; needs ../shared/data; about 100 minutes on 2 cores)
	@venv="$$(./scripts/env.sh)" && stage1="$${TONELINE_CACHE:-$$HOME/.cache/toneline}/text-stage1.pt" && \
	  $$venv/bin/python -m training.recipes.text.train --epochs 2 --out "$$stage1" && \
	  $$venv/bin/python -m training.recipes.text.train --init "$$stage1" --epochs 1 --goemotions-share 0.5 \
	    --goemotions-exclude approval,desire --class-weight-power 0.25 --lr 2e-4 --head-lr 5e-4 && \
	  $$venv/bin/python -m training.recipes.text.head --dd-repeat 5 8 --power 0.25 0.5 --epochs 20 40 --neutral-offset 0 0.5 1 --tune-offsets 4 --out models/weights/text_lora.pt

train-text-frozen:  ## retrain the foundation's frozen-encoder text head, the baseline (needs ../shared/data)
	@venv="$$(./scripts/env.sh)" && $$venv/bin/python -m training.recipes.text.frozen

train-voice:  ## recompute voice features (RAVDESS, FSDD digit strings, pocketsphinx-testdata and espeak-ng/flite probes; ~15 minutes once, ~3 GB) and retrain the voice head with its caller baseline (CV + export ~10 minutes on one core), then print the report
	@venv="$$(./scripts/env.sh)" && $$venv/bin/python -m training.recipes.voice.features && $$venv/bin/python -m training.recipes.voice.calm && \
	$$venv/bin/python -m training.recipes.voice.train && $$venv/bin/python -m training.recipes.voice.report

train-face:  ## retrain the facial expression ensemble on FER2013 (needs ../shared/data): three CNNs side by side, 40 epochs each on one thread (with bf16 on AMX/AVX512-BF16 CPUs about 41 min a member when two share two cores; use --precision fp32 elsewhere), then the ensemble
	@venv="$$(./scripts/env.sh)" && runs="$${TONELINE_CACHE:-$$HOME/.cache/toneline}/face-runs" && mkdir -p "$$runs" && \
	pids=""; for seed in 13 7 29; do \
	  $$venv/bin/python -m training.recipes.face.train --epochs 40 --threads 1 --precision bf16 --seed $$seed --split-seed 13 --out "$$runs/seed$$seed.pt" > "$$runs/seed$$seed.log" 2>&1 & pids="$$pids $$!"; \
	done; for pid in $$pids; do wait $$pid || { echo "a face member failed: see $$runs/seed*.log" >&2; exit 1; }; done && \
	$$venv/bin/python -m training.recipes.face.ensemble "$$runs/seed13.pt" "$$runs/seed7.pt" "$$runs/seed29.pt"

train-fusion:  ## refit the evidence fusion (needs ../shared/data, espeak-ng + flite for the spoken check, and the voice CV's out-of-fold logits: make train-voice, or python -m training.recipes.voice.train --no-export)
	@venv="$$(./scripts/env.sh)" && $$venv/bin/python -m training.recipes.fusion.train

adapt:  ## adapt the text head to this deployment's corrections (issue 35): OUT=dir (and TONELINE_CONFIG for its Redis); refuses a standard set's drop over 2 points unless FORCE=1
	@test -n "$(OUT)" || { echo "make adapt OUT=/path/to/weights-dir [FORCE=1]"; exit 2; }
	@venv="$$(./scripts/env.sh)" && tmp="$$(mktemp)" && $$venv/bin/python -m plugin.corrections export "$$tmp" && $$venv/bin/python -m models.adapt "$$tmp" --out "$(OUT)" $(if $(FORCE),--force,); status=$$?; rm -f "$$tmp"; exit $$status

bench:  ## run the benchmarks in bench/
	@venv="$$(./scripts/env.sh)" && $$venv/bin/python -m bench.nlu_component && $$venv/bin/python -m bench.text && $$venv/bin/python -m bench.dashboard_live && $$venv/bin/python -m bench.telephony && $$venv/bin/python -m bench.voice --repeats 10 && $$venv/bin/python -m bench.fusion && $$venv/bin/python -m bench.face && $$venv/bin/python -m bench.video_session && $$venv/bin/python -m bench.redis_per_turn

env:  ## create the virtualenv only; prints its path
	@./scripts/env.sh

dashboard:  ## only the supervisor dashboard (needs Redis; set TONELINE_DASHBOARD_PASSWORD)
	@venv="$$(./scripts/env.sh)" && $$venv/bin/python -m plugin.analytics serve
