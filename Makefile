# One-command set-up: every target that needs Python creates/refreshes .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow bench lint format clean install train-default browser docs-images

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip setuptools wheel

# torch goes in first, pinned, so that stable-baselines3 accepts it and pulls no CUDA build.
$(STAMP): $(PY) pyproject.toml constraints.txt
	$(PY) -m pip install -c constraints.txt torch==2.13.0
	$(PY) -m pip install -c constraints.txt -e '.[dev,ray]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/autopilot demo

# The HTML report is tested in a real headless Chromium, from the system's packages where
# none is installed (AUTOPILOT_BROWSER names another); the test step requires it.
browser:
	@if [ -z "$$AUTOPILOT_BROWSER" ] && ! command -v chromium >/dev/null 2>&1 \
		&& ! command -v chromium-browser >/dev/null 2>&1; then \
		echo "installing Chromium for the report's browser test"; \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
			$$SUDO apt-get install -y -qq chromium >/dev/null; \
	fi

test: $(STAMP) browser
	AUTOPILOT_REQUIRE_BROWSER=1 $(PY) -m pytest -q

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

bench: $(STAMP)
	mkdir -p bench/results
	$(PY) bench/env_speed.py --json bench/results/env_speed.json
	$(PY) bench/quality.py --json bench/results/quality.json
	$(PY) bench/mpc_latency.py --json bench/results/mpc_latency.json
	$(PY) bench/recommend_speed.py --json bench/results/recommend_speed.json
	$(PY) bench/budget_risk.py --json bench/results/budget_risk.json
	$(PY) bench/batch_speed.py --json bench/results/batch_speed.json
	$(PY) bench/twin.py --json bench/results/twin.json

# The shipped PPO planner: about 15 minutes on 2 cores; writes the .safetensors policy and a .json with the
# config and the learning curve beside it.
train-default: $(STAMP)
	$(VENV)/bin/autopilot train --scenario mixed --timesteps 40000 --seed 0 --prior fitted,cold --pool 256 \
		--eval-every 20000 --out policies/pretrained/ppo_mpc_default.safetensors
	rm -rf policies/pretrained/ppo_mpc_default_checkpoints

# The figures in README.md and docs/, made by the commands they describe.
docs-images: $(STAMP) browser
	$(PY) docs/make_images.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
