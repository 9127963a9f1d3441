"""Python TensorFlow STRIP, the reference of bbd's STRIP tests and benchmark.

Usage:
  strip_reference.py scores --weights W.h5 --pool POOL --indices i,j,... [--mode sum|blend]
                     [--alpha A] [--unit nats|bits] INPUT...
      STRIP as the STRIP and BBD notebooks run it: for each input, the overlays
      pool[indices] are superimposed in numpy (x + o, or (1-A) x + A o), the
      Keras DeepID model (the CSAW weights) classifies them, and the score is
      the mean over the overlays of the entropy across classes of each
      prediction (0 log 0 = 0). Prints {"scores", "labels"} (labels: the
      model's label of each input itself).
  strip_reference.py bench --weights W.h5 --pool POOL --n N --overlays M --batch B --runs R
      Times, on N inputs (the pool's images, repeated) with M overlays each:
        plain:       tf.function inference of N*(M+1) images (no overlays)
        strip_graph: STRIP built in a tf.function (overlays a constant, the
                     batch broadcast against them), one call per input
        strip_numpy: STRIP with overlays built in numpy and model.predict
                     (the notebooks' way)
      Prints images/s of each (overlaid images counted, the input itself
      included, as bbd counts them): best of R runs after a warm-up.
  strip_reference.py filter --savedmodel DIR [--batch B] INPUT...
      Runs an exported STRIP filter's serving_default on the inputs, B at a
      time; prints {"labels", "scores"}.

POOL and INPUT are folders of images (sorted by name) or competition HDF5
files (data [N, 3, H, W] 0..255)."""
import argparse
import json
import os
import time

import numpy as np


def load(path):
    if os.path.isdir(path):
        from keras_models import load_images
        return load_images([path])[1]
    import h5py
    with h5py.File(path, "r") as f:
        x = np.array(f["data"], dtype=np.float32)
    return (np.transpose(x, (0, 2, 3, 1)) / np.float32(255)).astype(np.float32)


def load_all(paths):
    return np.concatenate([load(p) for p in paths])


def entropy(p, unit):
    p = p.astype(np.float64)
    e = -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1)), 0), axis=-1)
    return e / np.log(2) if unit == "bits" else e


def model_for(weights, x):
    from keras_models import deepid, load_csaw_weights
    import h5py
    with h5py.File(weights, "r") as f:
        classes = f["output"]["output"]["bias:0"].shape[0]
    m = deepid(h=x.shape[1], w=x.shape[2], c=x.shape[3], classes=classes)
    load_csaw_weights(m, weights)
    return m


def scores(a):
    x = load_all(a.inputs)
    pool = load(a.pool)
    ov = pool[[int(i) for i in a.indices.split(",")]]
    model = model_for(a.weights, x)
    out, labels = [], []
    for xi in x:
        blends = xi[None] + ov if a.mode == "sum" else (1 - a.alpha) * xi[None] + a.alpha * ov
        p = model.predict(np.concatenate([xi[None], blends.astype(np.float32)]), verbose=0)
        labels.append(int(np.argmax(p[0])))
        out.append(float(np.mean(entropy(p[1:], a.unit))))
    print(json.dumps({"scores": out, "labels": labels}))


def best(fn, runs):
    fn()
    secs = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        secs.append(time.perf_counter() - t0)
    return min(secs), secs


def bench(a):
    import tensorflow as tf
    pool = load(a.pool)
    x = pool[np.arange(a.n) % len(pool)]
    rng = np.random.default_rng(1)
    ov = pool[rng.choice(len(pool), a.overlays, replace=len(pool) < a.overlays)]
    model = model_for(a.weights, x)
    h, w, c = x.shape[1:]
    images = a.n * (a.overlays + 1)
    flat = np.concatenate([x] * (a.overlays + 1))

    @tf.function(input_signature=[tf.TensorSpec([None, h, w, c], tf.float32)])
    def serve(b):
        return model(b, training=False)

    def plain():
        for i in range(0, images, a.batch):
            serve(tf.constant(flat[i:i + a.batch])).numpy()

    ovc = tf.constant(ov)

    @tf.function(input_signature=[tf.TensorSpec([None, h, w, c], tf.float32)])
    def strip(b):
        blends = tf.reshape(ovc[:, None] + b[None], [-1, h, w, c])
        p = model(tf.concat([b, blends], 0), training=False)
        p = tf.reshape(p, [a.overlays + 1, -1, p.shape[-1]])[1:]
        return tf.reduce_mean(-tf.reduce_sum(tf.math.xlogy(p, p), -1), 0)

    per = max(1, a.batch // (a.overlays + 1))

    def strip_graph():
        return np.concatenate([strip(tf.constant(x[i:i + per])).numpy() for i in range(0, a.n, per)])

    def strip_numpy():
        out = []
        for xi in x:
            p = model.predict(np.concatenate([xi[None], xi[None] + ov]), batch_size=a.batch, verbose=0)
            out.append(np.mean(entropy(p[1:], "nats")))
        return out

    res = {"tf_version": tf.__version__, "images": images}
    for name, fn in (("plain", plain), ("strip_graph", strip_graph), ("strip_numpy", strip_numpy)):
        s, secs = best(fn, a.runs)
        res[name] = images / s
        res[name + "_seconds"] = secs
    print(json.dumps(res))


def filt(a):
    import tensorflow as tf
    x = load_all(a.inputs)
    fn = tf.saved_model.load(a.savedmodel).signatures["serving_default"]
    labels, sc = [], []
    for i in range(0, len(x), a.batch):
        out = fn(input=tf.constant(x[i:i + a.batch]))
        labels += [int(v) for v in out["label"].numpy()]
        sc += [float(v) for v in out["score"].numpy()]
    print(json.dumps({"labels": labels, "scores": sc}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["scores", "bench", "filter"])
    ap.add_argument("--weights")
    ap.add_argument("--pool")
    ap.add_argument("--indices")
    ap.add_argument("--mode", default="sum")
    ap.add_argument("--alpha", type=float, default=0.5)
    ap.add_argument("--unit", default="nats")
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--overlays", type=int, default=100)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--savedmodel")
    ap.add_argument("inputs", nargs="*")
    a = ap.parse_intermixed_args()
    {"scores": scores, "bench": bench, "filter": filt}[a.what](a)


if __name__ == "__main__":
    main()
