"""Shared Keras helpers for the oracle scripts: DeepID as the CSAW BadNets define
it, weights from their Keras 2.2.4 weights-only HDF5 files, images as the
reference notebooks preprocess them (channels-last, x / 255)."""
import glob
import os

import h5py
import numpy as np


def deepid(h=55, w=47, c=3, classes=1283):
    import keras
    from keras import layers
    x = keras.Input(shape=(h, w, c), name="input")
    c1 = layers.Conv2D(20, (4, 4), activation="relu", name="conv_1")(x)
    p1 = layers.MaxPooling2D((2, 2), name="pool_1")(c1)
    c2 = layers.Conv2D(40, (3, 3), activation="relu", name="conv_2")(p1)
    p2 = layers.MaxPooling2D((2, 2), name="pool_2")(c2)
    c3 = layers.Conv2D(60, (3, 3), activation="relu", name="conv_3")(p2)
    p3 = layers.MaxPooling2D((2, 2), name="pool_3")(c3)
    f1 = layers.Flatten(name="flatten_1")(p3)
    fc1 = layers.Dense(160, name="fc_1")(f1)
    c4 = layers.Conv2D(80, (2, 2), activation="relu", name="conv_4")(p3)
    f2 = layers.Flatten(name="flatten_2")(c4)
    fc2 = layers.Dense(160, name="fc_2")(f2)
    a = layers.Add(name="add_1")([fc1, fc2])
    a = layers.Activation("relu", name="activation_1")(a)
    out = layers.Dense(classes, activation="softmax", name="output")(a)
    return keras.Model(x, out, name="deepid")


def load_csaw_weights(model, path):
    """Sets each layer's weights from /<layer>/<layer>/{kernel,bias}:0."""
    with h5py.File(path, "r") as f:
        for layer in model.layers:
            if not layer.weights:
                continue
            g = f[layer.name][layer.name]
            layer.set_weights([np.array(g["kernel:0"]), np.array(g["bias:0"])])


def load_images(paths):
    from PIL import Image
    files = []
    for p in paths:
        if os.path.isdir(p):
            files += sorted(glob.glob(os.path.join(p, "*.png")) + glob.glob(os.path.join(p, "*.jpg")))
        else:
            files.append(p)
    x = np.stack([np.asarray(Image.open(f).convert("RGB"), dtype=np.float32) for f in files]) / np.float32(255)
    return files, x.astype(np.float32)
