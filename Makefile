# bbd: two commands. `make setup` installs everything (idempotent), `make test` runs the tests.
SHELL := /bin/bash
ENV := .deps/env.sh
# Each recipe line sources the environment written by setup (cgo flags, library path).
WITH_ENV = source $(ENV) &&

.PHONY: setup test build bench check-setup zoo

setup:
	bash scripts/setup.sh

check-setup:
	@test -f .deps/libtensorflow/.complete -a -f $(ENV) || { echo "bbd: libtensorflow is not installed here: run 'make setup' first" >&2; exit 1; }

build: check-setup
	$(WITH_ENV) go build -trimpath -o .deps/bin/bbd.bin ./cmd/bbd

# go vet, then every package's tests (which include the Python-oracle comparisons and the
# headless notebook runs). -p 1: the tests share 2 cores with TensorFlow's own threads.
test: check-setup
	$(WITH_ENV) go vet ./... && go test -p 1 -count=1 -timeout 60m ./...

bench: check-setup
	$(WITH_ENV) go run ./cmd/bbd bench

# Fuzz each reader of hostile files for FUZZTIME (go test runs their seed corpora as
# ordinary tests; crashers land in <package>/testdata/fuzz/<target>/). New inputs are
# minimised for at most FUZZMINIMIZE (Go's default, 60s, stalls fuzzing on slow readers);
# temporary files go to tmpfs (/dev/shm) when there is one.
FUZZTIME ?= 10m
FUZZPARALLEL ?= 1
FUZZMINIMIZE ?= 1s
FUZZ_TARGETS := tfmodels:FuzzParseKerasConfig tfmodels:FuzzReadKerasH5 tfmodels:FuzzReadMetaGraph \
	data:FuzzOpenH5 data:FuzzDecodeImage data:FuzzReadIDX
.PHONY: fuzz
fuzz: check-setup
	@$(WITH_ENV) if [ -d /dev/shm ]; then export TMPDIR=/dev/shm; fi; \
	for t in $(FUZZ_TARGETS); do \
	  pkg=$${t%%:*}; fn=$${t#*:}; echo "== $$fn (./$$pkg, $(FUZZTIME))"; \
	  go test -p 1 -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZE) \
	    -parallel $(FUZZPARALLEL) ./$$pkg/ || exit 1; \
	done

# The notebooks, with this checkout's GoNB kernel (.deps/env.sh puts .deps/jupyter on JUPYTER_PATH).
.PHONY: notebook
notebook: check-setup
	$(WITH_ENV) jupyter notebook notebooks/

# The notebooks in JupyterLab (installed in the venv by setup), with this checkout's GoNB kernel.
# As root Jupyter wants --allow-root. LAB_FLAGS: more flags, e.g. LAB_FLAGS='--no-browser --port=8899'.
.PHONY: lab
lab: check-setup
	$(WITH_ENV) .deps/venv/bin/jupyter lab $$([ "$$(id -u)" = 0 ] && echo --allow-root) $(LAB_FLAGS) notebooks/
