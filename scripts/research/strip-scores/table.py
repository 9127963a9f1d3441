# Research (not product code): FAR at FRR 0.05 (threshold: the 5th percentile of
# the clean threshold inputs' scores) and AUROC of four STRIP score variants
# from the logits dump.py saved: the mean (STRIP) or median over the overlays of
# the entropy of softmax(logits / T), T = 1 or 16. Prints a Markdown table.
# usage: table.py z_sun.npz ... (names as run.sh writes them)
import os, sys, numpy as np
def auroc(c, p):
    a = np.concatenate([c, p]); r = a.argsort(kind="stable").argsort() + 1
    return (r[:len(c)].sum() - len(c) * (len(c) + 1) / 2) / (len(c) * len(p))
def ent(lg, T):
    l = lg.astype(np.float64) / T; l = l - l.max(-1, keepdims=True)
    p = np.exp(l); p /= p.sum(-1, keepdims=True)
    return -(p * np.log(np.maximum(p, 1e-300))).sum(-1)
scores = {"mean T=1 (STRIP)": lambda lg: ent(lg, 1).mean(1), "mean T=16": lambda lg: ent(lg, 16).mean(1),
          "median T=1": lambda lg: np.median(ent(lg, 1), 1), "median T=16": lambda lg: np.median(ent(lg, 16), 1)}
rows = []
names = {"z_sun.npz": "reduced zoo sunglasses", "z_a1.npz": "reduced zoo anonymous_1", "z_a2.npz": "reduced zoo anonymous_2",
         "z_multi.npz": "reduced zoo multi_trigger", "f_multi.npz": "full zoo multi_trigger (retrained, no oneDNN)",
         "r_sun.npz": "real sunglasses, real faces", "r_multi.npz": "real multi-trigger, real faces"}
print("| model | poisoned set | " + " | ".join(scores) + " |")
print("|---|---|" + "---|" * len(scores))
for path in sys.argv[1:]:
    d = np.load(path); keys = [k for k in d.files if k.startswith("p")]
    for k in keys:
        cells = []
        for name, fn in scores.items():
            st, sc = fn(d["thr"]), fn(d["test"]); thr = np.quantile(st, 0.05); pk = fn(d[k])
            cells.append(f"{(pk >= thr).mean():.3f} ({auroc(sc, pk):.3f})")
        set_ = k.split("_", 1)[1].replace("_poisoned_data.h5", "").replace("multi_trigger_", "").replace("sunglasses_sunglasses", "sunglasses").replace("anonymous_1_", "").replace("anonymous_2_", "")
        print(f"| {names.get(os.path.basename(path), path)} | {set_} | " + " | ".join(cells) + " |")
