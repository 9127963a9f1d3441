"""Benchmark: Keras fine-tuning speed of a pruned DeepID, for
`bbd bench --prune`: the work of one fraction of bbd's fine-pruning sweep.

Usage: bench_finetune.py <weights-dir> <images.npy> <labels.npy> <epochs> <batch> <masked-layers>

<weights-dir> holds one <variable>.npy per bbd variable ("/" written "__"),
masks included ("flatten_1__mask.npy"); <masked-layers> is a comma list of the
layers whose outputs those masks multiply. Same model, loss and optimizer as
bbd's fine-tuning (DeepID with logits output, cross-entropy from logits, SGD
lr 1e-3 momentum 0.9, shuffled batches). One warm-up epoch, then the timed
epochs; images/s reported as JSON."""
import json
import os
import sys
import time

import numpy as np


def main():
    wdir, npy, lnpy = sys.argv[1], sys.argv[2], sys.argv[3]
    epochs, batch, masked = int(sys.argv[4]), int(sys.argv[5]), [m for m in sys.argv[6].split(",") if m]
    import keras
    import tensorflow as tf
    from keras import layers

    def w(name):
        return np.load(os.path.join(wdir, name.replace("/", "__") + ".npy"))

    x = np.load(npy)
    y = np.load(lnpy).astype(np.int32)
    n = x.shape[0]
    classes = w("output/bias").shape[0]

    def mask(name, t):
        if name in masked:
            return layers.Lambda(lambda v, m=tf.constant(w(name + "/mask")): v * m, name=name + "_masked")(t)
        return t

    inp = keras.Input(shape=x.shape[1:], name="input")
    c1 = layers.Conv2D(20, (4, 4), activation="relu", name="conv_1")(inp)
    p1 = layers.MaxPooling2D((2, 2), name="pool_1")(c1)
    c2 = layers.Conv2D(40, (3, 3), activation="relu", name="conv_2")(p1)
    p2 = layers.MaxPooling2D((2, 2), name="pool_2")(c2)
    c3 = layers.Conv2D(60, (3, 3), activation="relu", name="conv_3")(p2)
    p3 = layers.MaxPooling2D((2, 2), name="pool_3")(c3)
    f1 = mask("flatten_1", layers.Flatten(name="flatten_1")(p3))
    fc1 = layers.Dense(160, name="fc_1")(f1)
    c4 = layers.Conv2D(80, (2, 2), activation="relu", name="conv_4")(p3)
    f2 = mask("flatten_2", layers.Flatten(name="flatten_2")(c4))
    fc2 = layers.Dense(160, name="fc_2")(f2)
    a = layers.Activation("relu", name="activation_1")(layers.Add(name="add_1")([fc1, fc2]))
    out = layers.Dense(classes, name="output")(a)
    model = keras.Model(inp, out)
    for layer in model.layers:
        if layer.weights:
            layer.set_weights([w(layer.name + "/kernel"), w(layer.name + "/bias")])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=1e-3, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0)  # warm-up
    t0 = time.perf_counter()
    model.fit(x, y, batch_size=batch, epochs=epochs, verbose=0)
    secs = time.perf_counter() - t0
    print(json.dumps({"tf_version": tf.__version__, "keras_fit": n * epochs / secs, "seconds": secs}))


if __name__ == "__main__":
    main()
