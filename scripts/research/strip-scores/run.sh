#!/usr/bin/env bash
# Research (not product code): the README's "Other STRIP scores" table.
# usage: scripts/research/strip-scores/run.sh ZOO FULLZOO OUTDIR
#   ZOO      a reduced zoo (bbd zoo build --reduced; the tests' is in $TMPDIR/bbd-testzoo-*)
#   FULLZOO  a full zoo with multi_trigger (bbd zoo build --only multi_trigger)
# Needs `make setup` (.deps/venv) and a bbd binary on PATH (for bbd convert).
set -euo pipefail
Z=$1 F=$2 OUT=$3
HERE=$(cd "$(dirname "$0")" && pwd); ROOT=$HERE/../../..
P=$ROOT/.deps/venv/bin/python RF=$ROOT/../shared/real-faces B=$ROOT/../shared/badnets
mkdir -p "$OUT"; cd "$OUT"
for m in sunglasses multi_trigger_multi_target; do [ -d "real-$m" ] || bbd convert "$B/${m}_bd_weights.h5" "real-$m"; done
V=$Z/data/clean_validation_data.h5 T=$Z/data/clean_test_data.h5
$P "$HERE/dump.py" "$Z/sunglasses" z_sun.npz "$V:400" "$V:400-1000" "$T:600" "$Z/data/sunglasses_sunglasses_poisoned_data.h5:500"
$P "$HERE/dump.py" "$Z/anonymous_1" z_a1.npz "$V:400" "$V:400-1000" "$T:600" "$Z/data/anonymous_1_lipstick_poisoned_data.h5:500"
$P "$HERE/dump.py" "$Z/anonymous_2" z_a2.npz "$V:400" "$V:400-1000" "$T:600" "$Z/withheld/anonymous_2_noise_square_poisoned_data.h5:500"
$P "$HERE/dump.py" "$Z/multi_trigger" z_multi.npz "$V:400" "$V:400-1000" "$T:600" "$Z/data/multi_trigger_eyebrows_poisoned_data.h5:500" "$Z/data/multi_trigger_lipstick_poisoned_data.h5:500" "$Z/data/multi_trigger_sunglasses_poisoned_data.h5:500"
V=$F/data/clean_validation_data.h5 T=$F/data/clean_test_data.h5
$P "$HERE/dump.py" "$F/multi_trigger" f_multi.npz "$V:400" "$V:400-1000" "$T:600" "$F/data/multi_trigger_eyebrows_poisoned_data.h5:500" "$F/data/multi_trigger_lipstick_poisoned_data.h5:500" "$F/data/multi_trigger_sunglasses_poisoned_data.h5:500"
$P "$HERE/dump.py" real-sunglasses r_sun.npz "$RF/clean" "$RF/clean" "$RF/clean" "$RF/sunglasses"
$P "$HERE/dump.py" real-multi_trigger_multi_target r_multi.npz "$RF/clean" "$RF/clean" "$RF/clean" "$RF/multi-eyebrows" "$RF/multi-lipstick" "$RF/multi-sunglasses"
$P "$HERE/table.py" z_sun.npz z_a1.npz z_a2.npz z_multi.npz f_multi.npz r_sun.npz r_multi.npz
