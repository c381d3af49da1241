# The two commands a person needs: `make demo` and `make test`.
# Everything installs from requirements.lock (hash-pinned) into .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test venv lock schema bench clean

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

venv: $(STAMP)

# The whole local lifecycle on the example project, then proof that it converged.
demo: $(STAMP)
	$(BIN)/specops validate
	$(BIN)/specops render --check
	$(BIN)/specops plan
	$(BIN)/specops apply
	$(BIN)/specops status
	$(BIN)/specops lineage credit-risk@champion
	$(BIN)/specops plan --detailed-exitcode

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup

schema: $(STAMP)
	$(BIN)/specops schema

bench: $(STAMP)
	$(BIN)/python bench/bench_plan_scaling.py
	$(BIN)/python bench/bench_apply.py

# Re-resolve the lock (needs uv); commit the result.
lock:
	uvx --from uv uv pip compile pyproject.toml --extra dev --generate-hashes --python-version 3.11 -o requirements.lock

clean:
	rm -rf $(VENV) .specops mlruns
