#!/usr/bin/env bash
# One-command setup for bbd on a fresh Debian 12 (polyglot) machine.
#
# Installs, idempotently (a second run changes nothing and takes seconds):
#   - Debian packages: HDF5 (libhdf5-dev), Fashion-MNIST (dataset-fashion-mnist),
#     headless Jupyter (notebook, nbconvert, nbclient, ipykernel), Chromium (headless
#     browser of the tests that look at JupyterLab and the HTML report);
#   - libtensorflow (C API) unpacked from the official tensorflow-cpu wheel on PyPI
#     into .deps/libtensorflow (git-ignored);
#   - a Python venv in .deps/venv with the same TensorFlow, the reference oracle of the tests,
#     and JupyterLab (pinned below) with nbconvert, to open the notebooks as users do;
#   - Go tools pinned in go.mod (GoNB, goimports), gopls (pinned here) and the bbd command
#     into .deps/bin;
#   - the GoNB Jupyter kernel of this checkout, with the cgo and library-path environment,
#     in the checkout's own Jupyter data dir .deps/jupyter (on JUPYTER_PATH in .deps/env.sh):
#     it never overwrites another checkout's or the user's own "gonb" kernel;
#   - .deps/env.sh, to source for running `go` by hand.
#
# Environment knobs:
#   BBD_TF_WHEEL=tensorflow-cpu  (or "tensorflow" for the GPU build with CUDA wheels)
#   BBD_TF_VERSION=2.21.0
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEPS="$ROOT/.deps"
TF_WHEEL=${BBD_TF_WHEEL:-tensorflow-cpu}
TF_VERSION=${BBD_TF_VERSION:-2.21.0}
TFDIR="$DEPS/libtensorflow"
TFLIB="$TFDIR/tensorflow"
VENV="$DEPS/venv"
BIN="$DEPS/bin"
PY=${PYTHON:-python3}
JUPYTER_DIR="$DEPS/jupyter"
GOPLS_VERSION=v0.23.0 # code completion in the notebooks; v0.24 needs a newer Go
JUPYTERLAB_VERSION=4.6.6 # `make lab`, notebooks/lab_test.go
NBCONVERT_VERSION=7.17.2 # internal/nbhtml: executed notebooks as HTML

say() { printf '[setup] %s\n' "$*"; }
mkdir -p "$DEPS" "$BIN"

# ---- 1. Debian packages ------------------------------------------------------
APT_PKGS=(libhdf5-dev pkg-config dataset-fashion-mnist jupyter-notebook jupyter-client
  jupyter-nbconvert python3-nbclient python3-ipykernel chromium)
missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  say "installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
else
  say "Debian packages present"
fi

# ---- 2. libtensorflow from the PyPI wheel -----------------------------------
stamp="$TF_WHEEL==$TF_VERSION"
if [ -f "$TFDIR/.complete" ] && [ "$(cat "$TFDIR/.complete")" = "$stamp" ]; then
  say "libtensorflow $stamp present"
else
  say "downloading $stamp wheel from PyPI"
  mkdir -p "$DEPS/wheels"
  "$PY" -m pip download -q "$stamp" --no-deps --only-binary=:all: -d "$DEPS/wheels"
  whl=$(ls "$DEPS/wheels"/$(echo "$TF_WHEEL" | tr - _)-"$TF_VERSION"-*.whl | head -n1)
  say "unpacking $(basename "$whl")"
  tmp="$DEPS/libtensorflow.tmp.$$"
  rm -rf "$tmp"; mkdir -p "$tmp"
  "$PY" - "$whl" "$tmp" <<'PYEOF'
import sys, zipfile
whl, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(whl) as z:
    keep = [n for n in z.namelist()
            if n.startswith("tensorflow/include/")
            or n in ("tensorflow/libtensorflow_cc.so.2", "tensorflow/libtensorflow_framework.so.2")]
    for n in keep:
        z.extract(n, out)
PYEOF
  # The Go bindings link -ltensorflow; the C API lives in libtensorflow_cc.so.2 and some of
  # its symbols (TF_Status...) in libtensorflow_framework.so.2, so both get a plain .so name.
  ln -sf libtensorflow_cc.so.2 "$tmp/tensorflow/libtensorflow.so"
  ln -sf libtensorflow_framework.so.2 "$tmp/tensorflow/libtensorflow_framework.so"
  echo "$stamp" > "$tmp/.complete"
  rm -rf "$TFDIR"; mv "$tmp" "$TFDIR"
fi

# ---- 3. Python venv with the same TensorFlow (reference oracle) -------------
vstamp="$TF_WHEEL==$TF_VERSION h5py pillow"
if [ -f "$VENV/.complete" ] && [ "$(cat "$VENV/.complete")" = "$vstamp" ]; then
  say "Python venv present"
else
  say "creating Python venv with $TF_WHEEL==$TF_VERSION"
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip >/dev/null
  pkg="$TF_WHEEL==$TF_VERSION"
  # The GPU build takes its CUDA libraries from NVIDIA's PyPI wheels.
  [ "$TF_WHEEL" = tensorflow ] && pkg="tensorflow[and-cuda]==$TF_VERSION"
  "$VENV/bin/pip" install -q --find-links "$DEPS/wheels" "$pkg" h5py pillow
  echo "$vstamp" > "$VENV/.complete"
fi

# ---- 3b. JupyterLab in the venv --------------------------------------------
# Its own stamp inside the venv: a new venv (step 3) reinstalls it, a new pin upgrades it,
# without touching TensorFlow.
lstamp="jupyterlab==$JUPYTERLAB_VERSION nbconvert==$NBCONVERT_VERSION"
if [ -f "$VENV/.jupyterlab" ] && [ "$(cat "$VENV/.jupyterlab")" = "$lstamp" ]; then
  say "JupyterLab $JUPYTERLAB_VERSION present in the venv"
else
  say "installing $lstamp into the venv"
  "$VENV/bin/pip" install -q "jupyterlab==$JUPYTERLAB_VERSION" "nbconvert==$NBCONVERT_VERSION"
  echo "$lstamp" > "$VENV/.jupyterlab"
fi

# ---- 4. environment for cgo and the dynamic loader --------------------------
# LIBPATH: libtensorflow, plus the CUDA libraries of NVIDIA's wheels when the GPU
# build was chosen (none for tensorflow-cpu).
LIBPATH="$TFLIB"
for d in "$VENV"/lib/python3*/site-packages/nvidia/*/lib; do
  [ -d "$d" ] && LIBPATH="$LIBPATH:$d"
done
HDF5_INC=/usr/include/hdf5/serial
HDF5_LIB=/usr/lib/x86_64-linux-gnu/hdf5/serial
CGO_CFLAGS_VAL="-I$TFLIB/include -I$HDF5_INC"
CGO_LDFLAGS_VAL="-L$TFLIB -Wl,-rpath,$TFLIB -ltensorflow_framework -L$HDF5_LIB"
# gold links against the 788 MB libtensorflow_cc about 4x faster than GNU ld
# (every cgo test binary and every notebook cell links it).
if command -v ld.gold >/dev/null 2>&1; then CGO_LDFLAGS_VAL="$CGO_LDFLAGS_VAL -fuse-ld=gold"; fi
envfile="$DEPS/env.sh"
newenv=$(cat <<ENVEOF
# Generated by scripts/setup.sh: source it to run go build/test by hand.
export CGO_ENABLED=1
export CGO_CFLAGS="$CGO_CFLAGS_VAL"
export CGO_LDFLAGS="$CGO_LDFLAGS_VAL"
export LD_LIBRARY_PATH="$LIBPATH\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
export PATH="$BIN:\$(go env GOROOT)/bin:\$PATH"
export BBD_PYTHON="$VENV/bin/python"
export TF_CPP_MIN_LOG_LEVEL=\${TF_CPP_MIN_LOG_LEVEL:-2}
export JUPYTER_PATH="$JUPYTER_DIR\${JUPYTER_PATH:+:\$JUPYTER_PATH}"
ENVEOF
)
if [ ! -f "$envfile" ] || [ "$(cat "$envfile")" != "$newenv" ]; then
  printf '%s\n' "$newenv" > "$envfile.tmp" && mv "$envfile.tmp" "$envfile"
  say "wrote $envfile"
fi
# shellcheck disable=SC1090
source "$envfile"

# ---- 5. Go modules, pinned tools and the bbd command ------------------------
cd "$ROOT"
go mod download
go build -o "$BIN/gonb" github.com/janpfeifer/gonb
go build -o "$BIN/goimports" golang.org/x/tools/cmd/goimports
# -buildvcs=auto: bbd version names the revision when git is there.
go build -buildvcs=auto -o "$BIN/bbd.bin" ./cmd/bbd
if [ "$("$BIN/gopls" version 2>/dev/null | sed -n 's/.*gopls \(v[^ ]*\).*/\1/p' | head -n1)" != "$GOPLS_VERSION" ]; then
  say "building gopls $GOPLS_VERSION (notebook code completion)"
  GOBIN="$BIN" go install "golang.org/x/tools/gopls@$GOPLS_VERSION"
fi
# bbd is linked against libtensorflow (rpath into .deps): without it the dynamic
# loader would fail before Go runs with "error while loading shared libraries".
# This small launcher says what to do instead.
launcher=$(cat <<LAUNCH
#!/bin/sh
# bbd launcher written by scripts/setup.sh: checks libtensorflow, then runs bbd.
if [ ! -f "$TFLIB/libtensorflow_cc.so.2" ]; then
  echo "bbd: libtensorflow not found in $TFLIB: run 'make setup' in $ROOT" >&2
  exit 1
fi
# TensorFlow's INFO lines (graph passes, SavedModel loading) off unless asked for.
TF_CPP_MIN_LOG_LEVEL="\${TF_CPP_MIN_LOG_LEVEL:-2}" LD_LIBRARY_PATH="$LIBPATH\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "$BIN/bbd.bin" "\$@"
LAUNCH
)
if [ ! -f "$BIN/bbd" ] || [ "$(cat "$BIN/bbd")" != "$launcher" ]; then
  printf '%s\n' "$launcher" > "$BIN/bbd.tmp" && chmod +x "$BIN/bbd.tmp" && mv "$BIN/bbd.tmp" "$BIN/bbd"
fi
say "Go tools and bbd built in $BIN"

# ---- 6. GoNB Jupyter kernel with the environment it needs -------------------
# The kernel spec lives in this checkout's Jupyter data dir, found through
# JUPYTER_PATH (set by .deps/env.sh; `make notebook` and `make test` source it),
# so it replaces neither another checkout's nor the user's own "gonb" kernel.
kernel_json="$JUPYTER_DIR/kernels/gonb/kernel.json"
mkdir -p "$(dirname "$kernel_json")"
/usr/bin/python3 - "$kernel_json" "$BIN" "$LIBPATH" "$CGO_CFLAGS_VAL" "$CGO_LDFLAGS_VAL" "$(go env GOROOT)" "$ROOT" <<'PYEOF'
import json, os, sys
path, bindir, tflib, cflags, ldflags, goroot, root = sys.argv[1:]
want = {
    # What `gonb --install` writes, with this checkout's gonb.
    "argv": [os.path.join(bindir, "gonb"), "--kernel", "{connection_file}", "-logtostderr=true",
             "-alsologtostderr=false", "-raw_error=false", "-work=false", "-stderrthreshold=2", "-v=0"],
    "display_name": f"Go (gonb, bbd in {root})",
    "language": "go",
    "interrupt_mode": "message",
    "env": {
        "PATH": f"{bindir}:{goroot}/bin:/usr/local/bin:/usr/bin:/bin",
        "LD_LIBRARY_PATH": tflib,
        "CGO_ENABLED": "1",
        "CGO_CFLAGS": cflags,
        "CGO_LDFLAGS": ldflags,
        "TF_CPP_MIN_LOG_LEVEL": "2",
    },
}
try:
    with open(path) as f:
        have = json.load(f)
except (OSError, ValueError):
    have = None
if want != have:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(want, f, indent=2)
    os.replace(tmp, path)
    print("[setup] registered the GoNB kernel of this checkout at", path)
PYEOF
# Earlier setups registered the kernel in the user's Jupyter data dir: remove
# that one only if it is this checkout's (its gonb is ours).
old_kernel=$(jupyter --data-dir 2>/dev/null)/kernels/gonb/kernel.json
if [ -f "$old_kernel" ] && /usr/bin/python3 -c 'import json,sys; sys.exit(json.load(open(sys.argv[1]))["argv"][0] != sys.argv[2])' "$old_kernel" "$BIN/gonb" 2>/dev/null; then
  rm -rf "$(dirname "$old_kernel")"
  say "removed this checkout's old GoNB kernel from $(dirname "$old_kernel")"
fi
say "done"
