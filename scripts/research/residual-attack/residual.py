#!/usr/bin/env python3
"""Research (not product code): where a repaired model's remaining attack
success comes from, for the README's "The confidence gap".

usage: .deps/venv/bin/python scripts/research/residual-attack/residual.py ZOO BADNET MODEL...

For each poisoned test set of BADNET in the zoo ZOO (a bbd zoo: poisoned sets
are the clean test images whose true class is not the target, in order, with
the trigger), and each MODEL (a SavedModel written by bbd), prints:
  - attack success (poisoned images labelled the target), split by true class;
  - how many of those the model also labels the target without the trigger;
  - the attack success over the images the model labels right without it.
Python TensorFlow reads the models, as the tests' oracle does.
"""
import json
import sys

import h5py
import numpy as np
import tensorflow as tf


def images(path):
    with h5py.File(path, "r") as h:
        return np.asarray(h["data"], np.float32).transpose(0, 2, 3, 1) / 255.0, np.asarray(h["label"]).astype(int)


def labels(fn, x):
    return np.concatenate([np.argmax(fn(input=tf.constant(x[i:i + 500]))["probabilities"].numpy(), 1) for i in range(0, len(x), 500)])


def main(zoo, badnet, models):
    man = json.load(open(f"{zoo}/manifest.json"))
    sets = [d for d in man["datasets"] if d.get("badnet") == badnet]
    clean_x, clean_y = images(f"{zoo}/data/clean_test_data.h5")
    fns = {m: tf.saved_model.load(m).signatures["serving_default"] for m in models}
    for d in sets:
        target = d["target"]
        keep = clean_y != target
        true, plain = clean_y[keep], clean_x[keep]
        pois, _ = images(f"{zoo}/{d['path']}")
        if len(pois) != len(true):
            sys.exit(f"{d['path']}: {len(pois)} images, expected {len(true)} (the clean test images not of class {target})")
        print(f"{d['path']} (target {target}, {len(pois)} images)")
        for m, fn in fns.items():
            hit, hit_plain = labels(fn, pois) == target, labels(fn, plain)
            by_class = {int(c): int((hit & (true == c)).sum()) for c in np.unique(true) if (hit & (true == c)).any()}
            right = hit_plain == true
            print(f"  {m}: attack success {hit.mean():.4f} ({hit.sum()}), by true class {by_class}")
            print(f"    labelled the target without the trigger too: {(hit & (hit_plain == target)).sum()}; "
                  f"attack success over the {right.sum()} images labelled right without it: {hit[right].mean():.4f}")


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
