"""Oracle: one or more epochs of Keras training of DeepID (with logits output and
from_logits cross-entropy, the loss bbd trains on) from a CSAW BadNet's weights,
on PNG folders in the given order, without shuffling. Writes the resulting
weights in the CSAW layout (/<layer>/<layer>/{kernel,bias}:0) to --out and prints
JSON {"loss": [...per epoch...]}.

usage: train_oracle.py --weights W --out OUT.h5 --opt sgd|adam --lr LR
       [--momentum M] [--batch B] [--epochs E] [--distill W] dir...

--distill W trains on soft targets: (1-W) * one-hot label + W * the starting
model's softmax predictions (bbd's fine-tuning with distillation).
"""
import argparse
import json
import os
import re

import h5py
import numpy as np

from keras_models import deepid, load_csaw_weights, load_images

ap = argparse.ArgumentParser()
ap.add_argument("--weights", required=True)
ap.add_argument("--out", required=True)
ap.add_argument("--opt", default="sgd")
ap.add_argument("--lr", type=float, default=0.01)
ap.add_argument("--momentum", type=float, default=0.0)
ap.add_argument("--batch", type=int, default=32)
ap.add_argument("--epochs", type=int, default=1)
ap.add_argument("--distill", type=float, default=0.0)
ap.add_argument("dirs", nargs="+")
a = ap.parse_args()

import keras

files, xs = [], []
for d in a.dirs:
    f, x = load_images([d])
    files += f
    xs.append(x)
x = np.concatenate(xs)
y = np.array([int(re.search(r"(?:label|target)=(\d+)", os.path.basename(f)).group(1)) for f in files])

model = deepid()
load_csaw_weights(model, a.weights)
model.get_layer("output").activation = keras.activations.linear
opt = (keras.optimizers.SGD(learning_rate=a.lr, momentum=a.momentum) if a.opt == "sgd"
       else keras.optimizers.Adam(learning_rate=a.lr))
if a.distill > 0:
    logits = model.predict(x, batch_size=256, verbose=0).astype(np.float64)
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    onehot = np.eye(logits.shape[1])[y]
    y = ((1 - a.distill) * onehot + a.distill * p).astype(np.float32)
    loss = keras.losses.CategoricalCrossentropy(from_logits=True)
else:
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
model.compile(optimizer=opt, loss=loss)
hist = model.fit(x, y, batch_size=a.batch, epochs=a.epochs, shuffle=False, verbose=0)
with h5py.File(a.out, "w") as f:
    for layer in model.layers:
        if layer.weights:
            g = f.create_group(layer.name).create_group(layer.name)
            k, b = layer.get_weights()
            g["kernel:0"] = k
            g["bias:0"] = b
print(json.dumps({"loss": [float(v) for v in hist.history["loss"]], "n": int(len(x))}))
