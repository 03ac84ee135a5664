# face-attributes: `make serve` (train the demo model if needed, then serve) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 3000
MODEL ?= face-attributes:latest
# service:FaceAttributes (API + GPU-capable worker) or service:FaceAttributesOneProcess (CPU hosts)
SERVICE ?= service:FaceAttributes
# BENTOML_HOME set by the caller is passed through untouched (default: ~/bentoml).

.PHONY: install browser engine model serve image test lint format soak bench bench-celeba gpu-check profile clean

# pip, not uv: only pip takes the local CPU wheel of torch==2.13.0 (see GOTCHAS).
$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[test]"
	touch $@

install: $(VENV)/.installed

# The demo model: generated data, trained on the CPU in a few minutes, saved to the store.
model: install
	@$(BIN)/bentoml models get $(MODEL) >/dev/null 2>&1 \
		&& echo "model $(MODEL) found in the store" \
		|| $(BIN)/python -m train

serve: model
	FACE_ATTRIBUTES_MODEL=$(MODEL) $(BIN)/bentoml serve $(SERVICE) --port $(PORT)

# Debian's Chromium for the page tests (Playwright drives it; its own browser download fails here).
# Where apt-get cannot install it (not root, not Debian), those tests skip and say why.
browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq -o DPkg::Lock::Timeout=300 --no-install-recommends chromium fonts-liberation; \
		} >$${TMPDIR:-/tmp}/face-attributes-apt.log 2>&1 || { tail -n 3 $${TMPDIR:-/tmp}/face-attributes-apt.log; \
		echo "could not install chromium with apt-get (above): the browser tests will skip"; }

# Debian's docker.io (its client has BuildKit built in) and debootstrap (for a local base image
# where python:3.11-slim cannot be pulled), for `make image` and the container tests. dockerd is
# started by those commands when none runs. Where apt-get cannot install them, those tests skip.
engine:
	@command -v dockerd >/dev/null 2>&1 && command -v debootstrap >/dev/null 2>&1 || { apt-get update -qq \
		&& DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 \
		--no-install-recommends docker.io debootstrap; } >$${TMPDIR:-/tmp}/face-attributes-apt.log 2>&1 \
		|| { tail -n 3 $${TMPDIR:-/tmp}/face-attributes-apt.log; \
		echo "could not install docker.io with apt-get (above): the container tests will skip"; }

# The bento and its container image, tagged with the bento's version (last line printed).
# TORCH=cuda builds the GPU image (torch's CUDA build), tagged <version>-cuda.
TORCH ?= cpu
image: model engine
	$(BIN)/python -m container --torch $(TORCH)

# A pytest-xdist worker per core (at most 4: each starts its own servers), whole files to each,
# the longest first (tests/conftest.py).
TEST_WORKERS ?= $(shell n=$$(nproc); echo $$(( n < 4 ? n : 4 )))
test: install browser engine
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

# Memory over 20,000 requests against the served model (about 3 minutes on 2 cores).
soak: model
	FACE_ATTRIBUTES_MODEL=$(MODEL) $(BIN)/python -m bench.soak --requests 20000

# Serving beside TorchServe (both topologies, the demo model and a resnet18 at 128 px trained one
# epoch the first time, concurrency 1/8/32/64) against the in-process limit; where the serving
# memory goes; training throughput against raw compute; what face detection costs. About 14
# minutes on 2 cores, plus about 15 the first time (the resnet18).
bench: model
	$(BIN)/python -m bench.serving --model $(MODEL)
	$(BIN)/python -m bench.memory --model $(MODEL)
	$(BIN)/python -m bench.training
	$(BIN)/python -m bench.detection --model $(MODEL)

# Training data at CelebA's size: annotation read, first batch, loader images/s with 1/2/4 processes,
# memory over one epoch. Generates data/celeba-sized (202,599 images, 2.4 GB) the first time.
bench-celeba: install
	$(BIN)/python -m bench.celeba_sized

# On a GPU host, every GPU measurement in one command (docs/gpu.md). The venv needs Python 3.11:
# python3.11 on PATH, else one uv installs (bench/gpu_python.py, run by any python3, says how to get
# either); torch==2.13.0 comes from the index pip is configured with, whose Linux wheel is the CUDA
# build. Then a pre-flight (without CUDA: why, in one line, and exit 0) and the steps, each with a
# timeout; logs and result.json in runs/gpu-check. Options: GPU_CHECK_ARGS="--skip container ...".
gpu-check:
	@command -v python3 >/dev/null || { echo "gpu-check: needs python3 (any version) to find a Python 3.11"; exit 1; }
	@python=$$(python3 bench/gpu_python.py --venv $(VENV)) && $(MAKE) --no-print-directory install PYTHON="$$python"
	$(BIN)/python -m bench.gpu_check $(GPU_CHECK_ARGS)

# Where the serving CPU goes: py-spy flame graphs of each server process under 32 clients.
profile: model
	$(BIN)/python -m bench.profile --model $(MODEL) --target $(SERVICE)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) runs data .pytest_cache .ruff_cache
