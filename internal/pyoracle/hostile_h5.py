"""Test helper: edits an HDF5 file (made by a Go test) in ways the Go HDF5
bindings cannot, to make hostile inputs.

usage: hostile_h5.py <file.h5> float16 <dataset>   rewrite the dataset as float16
       hostile_h5.py <file.h5> cycle <group>       add a hard link <group>/loop -> <group>
       hostile_h5.py <file.h5> external <path>     make <path> an external link -> /etc/bbd.h5:/
       hostile_h5.py <file.h5> soft <path>         make <path> a soft link -> /
       hostile_h5.py <file.h5> fixed-string <attr> rewrite the root's string attribute as
                                                   numpy bytes (fixed length, NULL-padded,
                                                   as Keras 2 wrote model_config)

Prints {"ok": true}."""
import json
import sys

import h5py
import numpy as np

path, kind, target = sys.argv[1:4]
with h5py.File(path, "r+") as f:
    if kind == "float16":
        values = f[target][()]
        del f[target]
        f.create_dataset(target, data=values.astype(np.float16))
    elif kind == "cycle":
        f[target + "/loop"] = f[target]
    elif kind in ("external", "soft"):
        if target in f:
            del f[target]
        f[target] = h5py.ExternalLink("/etc/bbd.h5", "/") if kind == "external" else h5py.SoftLink("/")
    elif kind == "fixed-string":
        value = f.attrs[target]
        if isinstance(value, str):
            value = value.encode("utf8")
        del f.attrs[target]
        f.attrs[target] = np.bytes_(value)
    else:
        sys.exit("unknown kind " + kind)
print(json.dumps({"ok": True}))
