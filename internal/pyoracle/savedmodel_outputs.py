"""Oracle: loads a SavedModel with tf.saved_model.load and runs its
serving_default signature on images; prints JSON {"files", "outputs": {key:
values}} with every output of the signature, as nested lists."""
import json
import sys

import tensorflow as tf

from keras_models import load_images

model_dir, paths = sys.argv[1], sys.argv[2:]
loaded = tf.saved_model.load(model_dir)
fn = loaded.signatures["serving_default"]
files, x = load_images(paths)
(name, spec), = fn.structured_input_signature[1].items()
out = fn(**{name: tf.constant(x)})
print(json.dumps({"files": files, "outputs": {k: v.numpy().tolist() for k, v in out.items()}}))
