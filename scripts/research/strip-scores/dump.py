# Research (not product code; README, "Other STRIP scores"): dump the logits of STRIP's overlaid copies (blend 0.15,
# M = 100) for a SavedModel: pool / threshold / clean test / poisoned sets.
# usage: dump2.py MODEL OUT.npz POOL THR TEST POISONED...   (each SRC[:N])
import sys, glob, os, h5py, numpy as np, tensorflow as tf
from PIL import Image
alpha, M = 0.15, 100
def load(spec):
    src, _, n = spec.partition(":")
    lo, hi = (0, None)
    if n:
        a, _, b = n.partition("-")
        lo, hi = (int(a), int(b)) if b else (0, int(a))
    if src.endswith(".h5"):
        with h5py.File(src, "r") as h:
            return np.asarray(h["data"][lo:hi], np.float32).transpose(0, 2, 3, 1) / 255.0
    fs = sorted(glob.glob(os.path.join(src, "*.png")))[lo:hi]
    return np.stack([np.asarray(Image.open(f).convert("RGB").resize((47, 55)), np.float32) / 255.0 for f in fs])
m = tf.saved_model.load(sys.argv[1]); f = m.signatures["serving_default"]
pool = load(sys.argv[3])
rng = np.random.default_rng(1)
ov = pool[rng.choice(len(pool), size=M, replace=len(pool) < M)]   # one overlay set for all inputs, as bbd
out = {}
for key, spec in [("thr", sys.argv[4]), ("test", sys.argv[5])] + [(f"p{i}_" + os.path.basename(s.split(":")[0]), s) for i, s in enumerate(sys.argv[6:])]:
    x = load(spec)
    res = np.zeros((len(x), M, 0), np.float32); parts = []
    for i0 in range(0, len(x), 8):
        xb = x[i0:i0+8]
        z = ((1 - alpha) * xb[:, None] + alpha * ov[None]).reshape((-1,) + x.shape[1:])
        parts.append(f(input=tf.constant(z))["logits"].numpy().reshape(len(xb), M, -1))
    out[key] = np.concatenate(parts)
    print(key, out[key].shape, flush=True)
np.savez(sys.argv[2], **out)
