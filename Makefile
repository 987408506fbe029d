# The project's two commands: `make demo` (the main job) and `make test` (the test suite).
# Both create .venv and install the package with its pinned dependency ranges first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install test test-fast demo bench bench-core bench-tflite bench-parity bench-backbones bench-tune bench-combined bench-audit bench-audit-scale bench-multilabel lint

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

test: install
	$(BIN)/python -m pytest

# The quick loop: every test that neither trains nor converts a model (3.6 min on 2 AVX2 cores).
test-fast: install
	$(BIN)/python -m pytest -m "not slow"

demo: install
	PATH="$(CURDIR)/$(BIN):$$PATH" bash scripts/demo.sh

# Speed against PyTorch 2.13, ONNX Runtime and Debian's torch (bench/anchors.py; the
# torchref venv is built on first use by ../shared/bench/torchref.sh), Keras on TensorFlow
# against Keras on JAX and a two-process group against one process (bench/bench_engines.py),
# then the rest of the core benchmark (pipeline, cache build, a small run's epochs).
bench: install
	$(BIN)/python bench/anchors.py
	$(BIN)/python bench/bench_engines.py
	$(BIN)/python bench/bench_core.py --skip latency,torch

bench-core: install
	$(BIN)/python bench/bench_core.py

bench-tflite: install
	$(BIN)/python bench/bench_tflite.py

bench-backbones: install
	$(BIN)/python bench/bench_backbones.py

# tf-twohead against the PyTorch reference (Debian's python3-torchvision), 3 seeds x 2 models.
bench-parity: install
	[ -f demo_data/fm6k/test.csv ] || $(BIN)/tf-twohead data fashion-mnist demo_data/fm6k \
		--size 64 --train 6000 --val 1000 --test 2000
	$(BIN)/python bench/recipe_parity.py --data demo_data/fm6k

# The head-width search on the demo data (20 trials), then its best config against the
# default model at 3 seeds on the test split.
bench-tune: install
	[ -f demo_data/fm6k/test.csv ] || $(BIN)/tf-twohead data fashion-mnist demo_data/fm6k \
		--size 64 --train 6000 --val 1000 --test 2000
	$(BIN)/python bench/head_width_search.py --data demo_data/fm6k

# The data audit on planted problems (label flips, leaked test copies): precision and
# recall of what it flags, its time per 10,000 images, main-head F1 before/after cleaning.
bench-audit: install
	[ -f demo_data/fm6k/test.csv ] || $(BIN)/tf-twohead data fashion-mnist demo_data/fm6k \
		--size 64 --train 6000 --val 1000 --test 2000
	$(BIN)/python bench/audit_demo.py --data demo_data/fm6k

# Three independent questions, half their answers unknown: masked training against
# unknown-as-no, complete rows only and one model per head (2 seeds), then adding a head
# to a trained model (model.init_from). Writes docs/figures/multilabel.png.
bench-multilabel: install
	$(BIN)/python bench/multilabel_demo.py --out bench_out/multilabel \
		--figure docs/figures/multilabel.png

# The audit at scale: Fashion-MNIST's 70,000 images and 30,000 edited copies (about 10 min).
bench-audit-scale: install
	$(BIN)/python bench/audit_scale.py

# ruff, then the import contracts of pyproject.toml (imports point one way, down).
lint: install
	$(BIN)/ruff check tf_twohead tests bench
	$(BIN)/lint-imports

# The combined-encoders demo: staged vs equal-budget baseline vs control, 3 seeds (fm10).
bench-combined: install
	$(BIN)/python bench/combined_encoders.py --data demo_data/fm10
