# The README's two commands: `make demo` (main job) and `make test` (whole suite).
# Each creates .venv if needed and installs everything into it.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.hwnas-installed

.PHONY: demo test install clean

install: $(STAMP)

# torch first: a local wheel if pip's find-links has one (installed with --no-index, then its
# dependencies from the index), else the CUDA build from PyPI on machines with an NVIDIA driver,
# else the CPU build from PyTorch's CPU index. Never a CUDA download on a CPU-only machine.
$(STAMP): pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null \
	  || { $(PIP) install --no-index --no-deps "$(TORCH)" 2>/dev/null && $(PIP) install "$(TORCH)"; } \
	  || { if command -v nvidia-smi >/dev/null 2>&1; then $(PIP) install "$(TORCH)"; \
	       else $(PIP) install "$(TORCH)" --index-url https://download.pytorch.org/whl/cpu; fi; }
	$(PIP) install -e ".[dev]"
	touch $(STAMP)

# The whole mission on the embedded MNIST: train, profile, search, Pareto front, export (~10 min on
# 2 cores). Rerunning resumes: finished stages are skipped. DEMO_OUT picks the output folder.
DEMO_OUT ?= runs/quickstart
demo: $(STAMP)
	$(VENV)/bin/nas run experiments/quickstart.toml --out $(DEMO_OUT)

test: $(STAMP)
	$(PY) -m pytest

clean:
	rm -rf $(VENV) .pytest_cache
