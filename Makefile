# make run: set up everything and serve http://127.0.0.1:$(PORT); make test: set up and run every test.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 5000
export PORT

.PHONY: run test setup venv vendor chromium demo bench lint clean

run: setup demo
	$(BIN)/annotator serve

test: setup chromium
	$(BIN)/python -m pytest -q -ra

setup: venv vendor
	$(BIN)/annotator db upgrade

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

vendor: static/vendor/.installed

static/vendor/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	rm -rf static/vendor && mkdir -p static/vendor/ort
	cp node_modules/onnxruntime-web/dist/ort.all.min.mjs node_modules/onnxruntime-web/dist/ort.wasm.min.mjs \
	   node_modules/onnxruntime-web/dist/ort-wasm-simd-threaded.mjs node_modules/onnxruntime-web/dist/ort-wasm-simd-threaded.wasm \
	   node_modules/onnxruntime-web/dist/ort-wasm-simd-threaded.jsep.mjs node_modules/onnxruntime-web/dist/ort-wasm-simd-threaded.jsep.wasm \
	   static/vendor/ort/
	cp node_modules/socket.io-client/dist/socket.io.esm.min.js static/vendor/
	touch $@

# Debian's Chromium drives the browser tests (Playwright cannot download browsers here).
chromium:
	@test -x /usr/bin/chromium || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

demo: setup
	$(BIN)/annotator demo

bench: setup
	$(BIN)/python -m bench.run

lint:
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) node_modules static/vendor instance
