"""Benchmark: Python TensorFlow inference speed on a CSAW BadNet, for `bbd bench`.

Usage: bench_predict.py <weights.h5> <images.npy> <batch> <runs>

Builds DeepID in Keras with the weights (keras_models.py), loads the float32
images [N, 55, 47, 3] (already x / 255) from the .npy file, and times two
paths, each warmed up once with a full pass and then timed `runs` times:

  keras_predict: model.predict(x, batch_size=batch)
  tf_function:   a tf.function (input signature [None, 55, 47, 3]) calling the
                 model on each batch, outputs copied back to numpy

Prints JSON: best images/s of each path, every run's seconds, and the labels
(argmax) of the last keras_predict run so the caller can check agreement."""
import json
import sys
import time

import numpy as np

from keras_models import deepid, load_csaw_weights


def best_rate(fn, n, runs):
    fn()  # warm-up: tracing, graph building, thread pools
    secs = []
    out = None
    for _ in range(runs):
        t0 = time.perf_counter()
        out = fn()
        secs.append(time.perf_counter() - t0)
    return n / min(secs), secs, out


def main():
    weights, npy, batch, runs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    import tensorflow as tf

    x = np.load(npy)
    n = x.shape[0]
    model = deepid(h=x.shape[1], w=x.shape[2], c=x.shape[3])
    load_csaw_weights(model, weights)

    def keras_predict():
        return model.predict(x, batch_size=batch, verbose=0)

    @tf.function(input_signature=[tf.TensorSpec([None, x.shape[1], x.shape[2], x.shape[3]], tf.float32)])
    def serve(b):
        return model(b, training=False)

    def tf_function():
        return np.concatenate([serve(tf.constant(x[i:i + batch])).numpy() for i in range(0, n, batch)])

    kr, ksecs, kout = best_rate(keras_predict, n, runs)
    fr, fsecs, fout = best_rate(tf_function, n, runs)
    print(json.dumps({
        "tf_version": tf.__version__,
        "keras_predict": kr,
        "keras_predict_seconds": ksecs,
        "tf_function": fr,
        "tf_function_seconds": fsecs,
        "labels": np.argmax(kout, axis=1).tolist(),
        "max_diff_paths": float(np.max(np.abs(kout - fout))),
    }))


if __name__ == "__main__":
    main()
