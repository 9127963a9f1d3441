"""Oracle: gradient of the mean sparse cross-entropy (from logits) of DeepID with
a CSAW BadNet's weights with respect to the input images, for the given label.
usage: input_gradient.py <weights.h5> <label> <images...>
Prints JSON {"files", "grad": flat list}."""
import json
import sys

import numpy as np
import tensorflow as tf

from keras_models import deepid, load_csaw_weights, load_images

weights, label, paths = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
import keras

model = deepid()
load_csaw_weights(model, weights)
model.get_layer("output").activation = keras.activations.linear
files, x = load_images(paths)
x = tf.constant(x)
y = tf.constant(np.full(len(files), label, dtype=np.int32))
with tf.GradientTape() as tape:
    tape.watch(x)
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=model(x)))
g = tape.gradient(loss, x).numpy()
print(json.dumps({"files": files, "grad": g.reshape(-1).tolist()}))
