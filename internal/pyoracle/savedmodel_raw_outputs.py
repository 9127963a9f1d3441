"""Oracle: loads a SavedModel with tf.saved_model.load and runs its
serving_default signature on images given as raw float32 values
(channels-last, n x h x w x c, native byte order) in a file; prints JSON
{"outputs": {key: values}} with every output of the signature."""
import json
import sys

import numpy as np
import tensorflow as tf

model_dir, raw, n, h, w, c = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:7])
x = np.fromfile(raw, dtype=np.float32).reshape(n, h, w, c)
fn = tf.saved_model.load(model_dir).signatures["serving_default"]
(name, spec), = fn.structured_input_signature[1].items()
out = fn(**{name: tf.constant(x)})
print(json.dumps({"outputs": {k: v.numpy().tolist() for k, v in out.items()}}))
