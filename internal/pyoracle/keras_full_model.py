"""Oracle: builds small Keras models of every layer kind bbd imports (InputLayer,
Conv2D with strides/padding, MaxPooling2D, Dense, Flatten, Add, Activation,
Dropout; functional and Sequential), with seeded random weights, saves each as a
full-model HDF5 file (model.save, with its model_config), runs it on seeded
random inputs and prints JSON {"models": [{"path", "x", "shape", "probs"}]}.

usage: keras_full_model.py <out-dir>"""
import json
import os
import sys

import numpy as np

out = sys.argv[1]
import keras
from keras import layers

keras.utils.set_random_seed(3)


def functional():
    x = keras.Input(shape=(12, 10, 2), name="img")
    a = layers.Conv2D(6, (3, 3), strides=(2, 1), padding="same", activation="relu", name="conv_a")(x)
    a = layers.MaxPooling2D((2, 2), name="pool_a")(a)
    b = layers.Conv2D(6, 2, padding="valid", activation="tanh", use_bias=False, name="conv_b")(x)
    b = layers.MaxPooling2D(pool_size=(3, 3), strides=(3, 3), name="pool_b")(b)
    fa = layers.Dense(8, name="dense_a")(layers.Flatten(name="flat_a")(a))
    fb = layers.Dense(8, activation="sigmoid", name="dense_b")(layers.Flatten(name="flat_b")(b))
    s = layers.Add(name="sum")([fa, fb])
    s = layers.Activation("relu", name="act")(s)
    s = layers.Dropout(0.3, name="drop")(s)
    o = layers.Dense(5, activation="softmax", name="probs")(s)
    return keras.Model(x, o, name="functional_test")


def sequential():
    return keras.Sequential([
        keras.Input(shape=(8, 8, 3)),
        layers.Conv2D(4, 3, activation="relu", name="c1"),
        layers.MaxPooling2D(name="p1"),
        layers.Flatten(name="f"),
        layers.Dense(7, activation="softmax", name="out"),
    ], name="sequential_test")


res = []
rng = np.random.default_rng(5)
for build in (functional, sequential):
    m = build()
    path = os.path.join(out, m.name + ".h5")
    m.save(path)
    shape = (4,) + tuple(m.input_shape[1:])
    x = rng.random(shape, dtype=np.float32)
    res.append({"path": path, "x": x.reshape(-1).tolist(), "shape": list(shape),
                "probs": m.predict(x, verbose=0).reshape(-1).tolist()})
print(json.dumps({"models": res}))
