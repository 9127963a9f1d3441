"""Oracle: builds DeepID in Keras with a CSAW BadNet's weights and exports it as
a TF2 SavedModel (model.export) in the given directory."""
import sys

from keras_models import deepid, load_csaw_weights

weights, out_dir = sys.argv[1], sys.argv[2]
model = deepid()
load_csaw_weights(model, weights)
model.export(out_dir, verbose=False)
print("{}")
