# memgaze: `make demo` runs the whole pipeline on synthetic demo data, `make test` runs the tests.
# Both create .venv from the pinned requirements on first use; nothing else needs installing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUN := runs/demo
TEACHER_RUN := build/demo-teacher

# Which built-in model `make builtin` makes (memgaze-lite0-resmem, the default, or memgaze-lite2-resmem); its recipe
# (the one memgaze.builtin names for it: tests/test_photos.py checks) and its run folder follow from the name.
BUILTIN_MODEL ?= memgaze-lite0-resmem
BUILTIN := $(if $(filter memgaze-lite0-resmem,$(BUILTIN_MODEL)),runs/builtin,runs/$(BUILTIN_MODEL))
BUILTIN_RECIPE = memgaze/builtin/$(if $(filter memgaze-lite0-resmem,$(BUILTIN_MODEL)),recipe.json,recipe-$(BUILTIN_MODEL:memgaze-%-resmem=%).json)
BUILTIN_SEEDS ?= $(shell $(BIN)/python -c "import json; print(*json.load(open('$(BUILTIN_RECIPE)'))['seeds'])" 2>/dev/null)
BUILTIN_DIR = $(shell $(BIN)/python -c "from memgaze import builtin; print(builtin.DEFAULT.folder())")

.PHONY: install demo builtin builtin-seed calib-data test test-fast docs typecheck trt-api-check jetson-check arm64-check test-teacher clean

$(STAMP): requirements/base.txt requirements/dev.txt requirements/nodeps.txt setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -r requirements/dev.txt
	$(BIN)/python -m pip install --no-deps -r requirements/nodeps.txt
	$(BIN)/python -m pip install --no-deps --no-build-isolation -e .
	touch $@

install: $(STAMP)

# 1. The built-in model on real frames: a held-out real video (Debian's opencv-doc, fetched offline) scored and
#    annotated, and its agreement with ResMem (score and map) on the held-out photos shipped beside the model.
# 2. The whole pipeline on SYNTHETIC scenes: teacher -> student with gaze imitation and users, INT8 export,
#    scoring, latency report.
demo: $(STAMP)
	$(BIN)/python -m memgaze.builtin.photos --out $(RUN)/real --only opencv-doc --crops 1
	$(BIN)/memgaze-run --source $(RUN)/real/video/opencv-doc__Megamind.avi --headless \
		--jsonl $(RUN)/real/video-scores.jsonl --save-video $(RUN)/real/annotated.mp4
	$(BIN)/memgaze-bench agreement --data $(BUILTIN_DIR)/samples --out $(RUN)/real/report
	$(BIN)/memgaze-train --data demo --out $(RUN)
	$(BIN)/memgaze-export --checkpoint $(RUN)/student.safetensors --out $(RUN)/deploy --int8 --calib $(RUN)/demo-data/images
	$(BIN)/memgaze-run --source $(RUN)/demo-data/images --model $(RUN)/deploy --headless --jsonl $(RUN)/scores.jsonl --save-video $(RUN)/annotated.mp4
	$(BIN)/memgaze-bench latency --model $(RUN)/deploy --batch 1 --iters 50 --out $(RUN)/bench

# A built-in model (memgaze/builtin/): real photographs and videos fetched offline from PyPI/Debian packages;
# ResMem (NON-COMMERCIAL licence) scores and maps (Grad-CAM) them once (cached); the student is distilled from both
# at each seed, exported to INT8 and measured on the held-out photos; the first seed ships, with its model card.
# Hours on 2 CPU cores; not run by CI. Rebuild only when the model's recipe (memgaze/builtin/recipe.json for the
# default, recipe-lite2.json for memgaze-lite2-resmem) changes: every setting is in it (packages, crops, split,
# seeds, training), nothing is given here.
# Each seed also trains without the recipe's held-out packages and is measured on them (leave-packages-out).
builtin: $(STAMP)
	@test -f $(BUILTIN_RECIPE) || { echo "error: no built-in model is called $(BUILTIN_MODEL) ($(BUILTIN_RECIPE) is missing)" >&2; exit 2; }
	$(BIN)/python -m memgaze.builtin.photos --recipe $(BUILTIN_RECIPE) --out $(BUILTIN)/photos
	for seed in $(BUILTIN_SEEDS); do $(MAKE) --no-print-directory builtin-seed SEED=$$seed || exit 1; done
	$(BIN)/memgaze-bench latency --model $(BUILTIN)/seed$(firstword $(BUILTIN_SEEDS))/deploy --models student \
		--backends onnxruntime --precisions fp32,int8 --batch 1 --iters 200 --out $(BUILTIN)/bench
	$(BIN)/python tools/builtin.py --model $(BUILTIN_MODEL) --run $(BUILTIN) --seeds $(BUILTIN_SEEDS)

builtin-seed:
	$(BIN)/memgaze-train --data $(BUILTIN)/photos/train --out $(BUILTIN)/seed$(SEED) --config $(BUILTIN)/photos/train-config.json --seed $(SEED)
	mkdir -p $(BUILTIN)/calib && ln -f $(BUILTIN)/photos/train/*.jpg $(BUILTIN)/calib/
	$(BIN)/memgaze-export --checkpoint $(BUILTIN)/seed$(SEED)/student.safetensors --out $(BUILTIN)/seed$(SEED)/deploy --int8 --calib $(BUILTIN)/calib
	$(BIN)/memgaze-bench agreement --model seed$(SEED)=$(BUILTIN)/seed$(SEED)/deploy --data $(BUILTIN)/photos/heldout --out $(BUILTIN)/seed$(SEED)/report
	$(BIN)/memgaze-train --data $(BUILTIN)/photos/packages-out/train --out $(BUILTIN)/packages-out/seed$(SEED) --config $(BUILTIN)/photos/train-config.json --seed $(SEED)
	$(BIN)/memgaze-export --checkpoint $(BUILTIN)/packages-out/seed$(SEED)/student.safetensors --out $(BUILTIN)/packages-out/seed$(SEED)/deploy
	$(BIN)/memgaze-bench agreement --model seed$(SEED)=$(BUILTIN)/packages-out/seed$(SEED)/deploy --data $(BUILTIN)/photos/packages-out/heldout --out $(BUILTIN)/packages-out/seed$(SEED)/report

# Every test. The acceptance trainings are marked slow (minutes each): test-fast skips them,
# `$(BIN)/python -m pytest -m slow` runs only them.
test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

# The documentation site (docs/, mkdocs.yml) into build/site/; --strict turns every warning (a broken link or
# anchor, a page missing from the nav) into an error. Needs no network.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir build/site

# mypy checks every module and tool: tools/typed_tree.py lays the source out as Python imports it (setup.cfg's package_dir),
# and mypy reads a corrected copy of the tensorrt stubs (tools/trt_stubs.py), so a misspelled TensorRT call fails here.
TRT_STUBS := build/trt-stubs
TYPED_TREE := build/typed

typecheck: $(STAMP)
	$(BIN)/python tools/trt_stubs.py $(TRT_STUBS)
	$(BIN)/python tools/typed_tree.py $(TYPED_TREE)
	cd $(TYPED_TREE) && MYPYPATH=$(CURDIR)/$(TRT_STUBS) $(CURDIR)/$(BIN)/python -m mypy --config-file $(CURDIR)/setup.cfg memgaze $(CURDIR)/tools

# Every TensorRT name the code uses, against the real bindings of TensorRT 8.6, 10.x and 11.x (wheels from PyPI, cached in .cache/).
trt-api-check: $(STAMP)
	$(BIN)/python tools/trt_api_check.py

# What pip would install on a Jetson (aarch64, CPython 3.10; JetPack 6 with apt's numpy 1.21.5, JetPack 5 with a
# Python 3.10), resolved against PyPI: fails if numpy 2 would replace the numpy JetPack's OpenCV is built against.
jetson-check: $(STAMP)
	$(BIN)/python tools/jetson_resolve.py

# The torch-free runtime on an emulated arm64 Debian with apt's numpy and OpenCV, installed as on a Jetson (the
# aarch64 markers of setup.cfg evaluated by the emulated pip), scoring the built-in model against x86 by the gate.
# Needs qemu-user-static and mmdebstrap (Debian); the root and the venv are kept in .cache/arm64/. A few minutes.
# ARM64_FLAGS=--skip-without-root (CI) skips the run, saying so, where Debian's arm64 packages cannot be installed.
arm64-check: $(STAMP)
	$(BIN)/python tools/arm64_check.py --out build/arm64 $(ARM64_FLAGS)

# calib_data/ from the photo packages the built-in model uses (fetched into runs/builtin/photos first).
calib-data: $(STAMP)
	$(BIN)/python -m memgaze.builtin.photos --out $(BUILTIN)/photos
	$(BIN)/python tools/calib_data.py --photos $(BUILTIN)/photos

# The tests that assert a trained model's metric, at three training seeds (each must clear its bar at every
# seed: CPUs with other float kernels end short training runs in other places). About 5 minutes on 2 cores.
seed-check: $(STAMP)
	mkdir -p build
	for seed in 0 1 2; do \
		$(BIN)/python -m pytest -q -s -p no:cacheprovider tests/test_label_free.py -k "agrees or keeps_users" --train-seed $$seed > build/seed-$$seed.log; \
		status=$$?; echo "seed $$seed:"; grep -E "seed-check|passed|failed" build/seed-$$seed.log; [ $$status -eq 0 ] || exit 1; \
	done

# Regenerates tests/data/demo_teacher.int8.onnx, the ONNX teacher of the label-free acceptance test:
# a student trained on SYNTHETIC demo data (seed 1; the test distils on seed-0 scenes) and exported
# by memgaze-export. About 8 minutes on 2 CPU cores.
test-teacher: $(STAMP)
	$(BIN)/memgaze-train --data demo --out $(TEACHER_RUN) --seed 1
	$(BIN)/memgaze-export --checkpoint $(TEACHER_RUN)/student.safetensors --out $(TEACHER_RUN)/deploy --int8 --calib $(TEACHER_RUN)/demo-data/images
	mkdir -p tests/data
	cp $(TEACHER_RUN)/deploy/model.int8.ort.onnx tests/data/demo_teacher.int8.onnx

clean:
	rm -rf $(RUN) $(BUILTIN)
