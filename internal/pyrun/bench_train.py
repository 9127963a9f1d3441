"""Benchmark: Python TensorFlow training speed (Keras fit) on a CSAW BadNet, for
`bbd bench --train`.

Usage: bench_train.py <weights.h5> <images.npy> <labels.npy> <batch> <runs>

Same model and loss as bbd's training (DeepID with logits output, sparse
cross-entropy from logits, SGD lr 1e-3 momentum 0.9), same images and labels in
the same order (shuffle=False). One warm-up epoch, then `runs` timed epochs; the
best images/s is reported as JSON."""
import json
import sys
import time

import numpy as np

from keras_models import deepid, load_csaw_weights


def main():
    weights, npy, lnpy, batch, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    import keras
    import tensorflow as tf

    x = np.load(npy)
    y = np.load(lnpy).astype(np.int32)
    n = x.shape[0]
    model = deepid(h=x.shape[1], w=x.shape[2], c=x.shape[3])
    load_csaw_weights(model, weights)
    model.get_layer("output").activation = keras.activations.linear
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=1e-3, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0)  # warm-up
    secs = []
    for _ in range(runs):
        t0 = time.perf_counter()
        model.fit(x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0)
        secs.append(time.perf_counter() - t0)
    print(json.dumps({"tf_version": tf.__version__, "keras_fit": n / min(secs), "keras_fit_seconds": secs}))


if __name__ == "__main__":
    main()
