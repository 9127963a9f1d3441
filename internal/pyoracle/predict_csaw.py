"""Oracle: Keras DeepID with a CSAW BadNet's weights; prints JSON
{"files": [...], "probs": [[...]]} for the given images (files or folders)."""
import json
import sys

from keras_models import deepid, load_csaw_weights, load_images

weights, paths = sys.argv[1], sys.argv[2:]
model = deepid()
load_csaw_weights(model, weights)
files, x = load_images(paths)
probs = model.predict(x, verbose=0)
print(json.dumps({"files": files, "probs": probs.tolist()}))
