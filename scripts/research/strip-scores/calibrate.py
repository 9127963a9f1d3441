# Research (not product code; README, "Other STRIP scores").
# Temperature scaling (Guo et al. 2017) on clean labelled data: the T that
# minimises the NLL of softmax(logits / T). usage: calib.py MODEL SRC[:N]
import sys, glob, os, re, h5py, numpy as np, tensorflow as tf
from PIL import Image
def load(spec):
    src, _, n = spec.partition(":")
    if src.endswith(".h5"):
        with h5py.File(src, "r") as h:
            k = int(n) if n else None
            return np.asarray(h["data"][:k], np.float32).transpose(0, 2, 3, 1) / 255.0, np.asarray(h["label"][:k]).astype(int)
    fs = sorted(glob.glob(os.path.join(src, "*.png")))
    x = np.stack([np.asarray(Image.open(f).convert("RGB").resize((47, 55)), np.float32) / 255.0 for f in fs])
    y = np.array([int(re.search(r"label=(\d+)", f).group(1)) for f in fs])
    return x, y
m = tf.saved_model.load(sys.argv[1]); f = m.signatures["serving_default"]
x, y = load(sys.argv[2])
lg = np.concatenate([f(input=tf.constant(x[i:i+256]))["logits"].numpy() for i in range(0, len(x), 256)]).astype(np.float64)
def nll(T):
    l = lg / T; l = l - l.max(1, keepdims=True)
    return -(l[np.arange(len(y)), y] - np.log(np.exp(l).sum(1))).mean()
Ts = np.exp(np.linspace(np.log(0.1), np.log(100), 400))
v = [nll(T) for T in Ts]
print(sys.argv[1], "accuracy", (lg.argmax(1) == y).mean(), "T*", round(float(Ts[int(np.argmin(v))]), 3), "NLL T=1", round(nll(1), 4), "NLL T*", round(min(v), 4))
