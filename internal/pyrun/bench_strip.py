"""Benchmark: Python TensorFlow STRIP on a CSAW BadNet, for `bbd bench --strip`.

Usage: bench_strip.py <weights.h5> <inputs.npy> <overlays.npy> <batch> <runs> <alpha>

Builds DeepID in Keras with the weights (keras_models.py), loads the float32
inputs [N, 55, 47, 3] and the M overlays [M, 55, 47, 3] (already x / 255,
the same overlays bbd's STRIP drew), superimposes them as bbd's STRIP did
(alpha > 0: the blend (1 - alpha) x + alpha o; alpha 0: the pixel sum x + o),
and times three paths, each warmed up
once and then timed `runs` times; every path handles the same N * (M + 1)
images (each input and its M overlaid copies, as bbd counts them):

  plain:       a tf.function (input signature [None, 55, 47, 3]) running the
               model on the N * (M + 1) images, `batch` at a time: plain
               inference, no overlays
  strip_graph: STRIP in a tf.function: the overlays a constant, a batch of
               max(1, batch // (M + 1)) inputs broadcast against them, the
               model on the inputs and their copies, the mean
               entropy (nats, 0 log 0 = 0) over the M copies as the score
  strip_numpy: STRIP as the STRIP and BBD notebooks run it: the copies built
               in numpy, model.predict per input

Prints JSON: best images/s of each path, every run's seconds, and the scores
of strip_graph (for the caller to compare with bbd's)."""
import json
import sys

import numpy as np

from bench_predict import best_rate
from keras_models import deepid, load_csaw_weights


def main():
    weights, xf, of, batch, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    alpha = float(sys.argv[6])
    import tensorflow as tf

    x, ov = np.load(xf), np.load(of)
    n, m = x.shape[0], ov.shape[0]
    h, w, c = x.shape[1:]
    images = n * (m + 1)
    model = deepid(h=h, w=w, c=c)
    load_csaw_weights(model, weights)
    flat = np.concatenate([x] * (m + 1))

    @tf.function(input_signature=[tf.TensorSpec([None, h, w, c], tf.float32)])
    def serve(b):
        return model(b, training=False)

    def plain():
        for i in range(0, images, batch):
            serve(tf.constant(flat[i:i + batch])).numpy()

    ovc = tf.constant(ov)

    @tf.function(input_signature=[tf.TensorSpec([None, h, w, c], tf.float32)])
    def strip(b):
        if alpha > 0:
            blends = tf.reshape((1 - alpha) * b[None] + alpha * ovc[:, None], [-1, h, w, c])
        else:
            blends = tf.reshape(ovc[:, None] + b[None], [-1, h, w, c])
        p = model(tf.concat([b, blends], 0), training=False)
        p = tf.reshape(p, [m + 1, -1, p.shape[-1]])[1:]
        return tf.reduce_mean(-tf.reduce_sum(tf.math.xlogy(p, p), -1), 0)

    per = max(1, batch // (m + 1))

    def strip_graph():
        return np.concatenate([strip(tf.constant(x[i:i + per])).numpy() for i in range(0, n, per)])

    def entropy(p):
        p = p.astype(np.float64)
        return -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1)), 0), axis=-1)

    def strip_numpy():
        out = []
        for xi in x:
            copies = (1 - alpha) * xi[None] + alpha * ov if alpha > 0 else xi[None] + ov
            p = model.predict(np.concatenate([xi[None], copies.astype(np.float32)]), batch_size=batch, verbose=0)
            out.append(float(np.mean(entropy(p[1:]))))
        return out

    res = {"tf_version": tf.__version__, "images": images}
    for name, fn in (("plain", plain), ("strip_graph", strip_graph), ("strip_numpy", strip_numpy)):
        rate, secs, out = best_rate(fn, images, runs)
        res[name] = rate
        res[name + "_seconds"] = secs
        if name == "strip_graph":
            res["scores"] = [float(v) for v in out]
    print(json.dumps(res))


if __name__ == "__main__":
    main()
