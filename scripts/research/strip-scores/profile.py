# Research (not product code; README, "The entropy profile"): STRIP's mean
# entropy against the entropy-profile score (defence.ScoreProfile) on the
# logits dump.py saved: the Mahalanobis distance of the M log-entropies,
# log(H + 1e-12), from the clean "thr" images' (Ledoit-Wolf shrinkage), with
# the threshold at FRR 0.05 from 5-fold cross-fitted clean scores. Where the
# clean inputs are the calibration images themselves (the 50 real faces),
# FRR and AUROC use their cross-fitted scores. Prints FRR, then FAR (AUROC)
# per poisoned set, for the mean and the profile.
# usage: M=100 profile.py z_sun.npz ...   (M: use the first M overlays)
import os, sys, numpy as np
M = int(os.environ.get("M", "100"))
def ent(lg):
    l = lg.astype(np.float64); l = l - l.max(-1, keepdims=True); p = np.exp(l); p /= p.sum(-1, keepdims=True)
    return -(p * np.log(np.maximum(p, 1e-300))).sum(-1)
def auroc(c, p):
    a = np.concatenate([c, p]); r = a.argsort(kind="stable").argsort() + 1
    return (r[:len(c)].sum() - len(c) * (len(c) + 1) / 2) / (len(c) * len(p))
def ledoit_wolf(X):
    n, p = X.shape; mu = X.mean(0); Xc = X - mu; S = Xc.T @ Xc / n
    m = np.trace(S) / p; d2 = ((S - m * np.eye(p)) ** 2).sum() / p
    b2 = sum(((np.outer(x, x) - S) ** 2).sum() for x in Xc) / n / n / p
    lam = min(b2, d2) / d2 if d2 > 0 else 1.0
    return mu, np.linalg.inv(lam * m * np.eye(p) + (1 - lam) * S)
def profile(train, Y):
    mu, P = ledoit_wolf(train); D = Y - mu
    return -np.einsum("ij,jk,ik->i", D, P, D)
def cross_fit(X, folds=5):
    perm = np.random.default_rng(1).permutation(len(X)); out = np.zeros(len(X))
    for f in range(folds):
        te = perm[f::folds]; out[te] = profile(X[np.setdiff1d(perm, te)], X[te])
    return out
for path in sys.argv[1:]:
    d = np.load(path); sets = [k for k in d.files if k.startswith("p")]
    H = {k: ent(d[k][:, :M]) for k in ["thr", "test"] + sets}
    L = {k: np.log(v + 1e-12) for k, v in H.items()}
    same = d["thr"].shape == d["test"].shape and np.array_equal(d["thr"], d["test"])
    cal = cross_fit(L["thr"]); t_prof = np.quantile(cal, 0.05)
    S = {k: profile(L["thr"], v) for k, v in L.items()}
    clean_prof = cal if same else S["test"]
    t_mean = np.quantile(H["thr"].mean(1), 0.05)
    print(f"{os.path.basename(path)} M={M} calibration {len(L['thr'])}: FRR mean {(H['test'].mean(1) <= t_mean).mean():.3f}, profile {(clean_prof <= t_prof).mean():.3f}")
    for k in sets:
        print(f"  {k}: mean {(H[k].mean(1) > t_mean).mean():.3f} ({auroc(H['test'].mean(1), H[k].mean(1)):.3f}), "
              f"profile {(S[k] > t_prof).mean():.3f} ({auroc(clean_prof, S[k]):.3f})")
