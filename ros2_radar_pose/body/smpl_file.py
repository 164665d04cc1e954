"""Reading SMPL model files: the official pickle, or an .npz of plain arrays, checked on the way in.

The official SMPL files (https://smpl.is.tue.mpg.de, registration and licence required) are
Python pickles; some store arrays as ``chumpy`` objects, which need the chumpy package (broken
on NumPy >= 1.24). Such a file is refused with a way out: ``radar-pose smpl-to-npz`` where chumpy
works turns it into an .npz of plain arrays, which loads anywhere. Pickles are read with an
unpickler that only builds NumPy arrays and SciPy sparse matrices, so a file cannot run code.
"""
from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import numpy as np

N_VERTICES, N_JOINTS, N_FACES = 6890, 24, 13776
SMPL_LEAF_VERTICES = (411, 2445, 5905, 3216, 6617)   # head top, middle fingertips, big toes (HybrIK)
WHERE_FROM = ("SMPL model files come from https://smpl.is.tue.mpg.de (registration and licence "
              "required); give the path of basicModel_neutral_lbs_10_207_0_v1.0.0.pkl (or an .npz "
              "made from it with `radar-pose smpl-to-npz`)")
# name -> shape, None where any size (at least 10 shape components) is fine
SHAPES: dict[str, tuple[int | None, ...]] = {
    "v_template": (N_VERTICES, 3), "shapedirs": (N_VERTICES, 3, None), "posedirs": (N_VERTICES, 3, 207),
    "J_regressor": (N_JOINTS, N_VERTICES), "weights": (N_VERTICES, N_JOINTS), "kintree_table": (2, N_JOINTS),
    "f": (N_FACES, 3),
}


class SMPLFileError(ValueError):
    """A SMPL file that is missing, unreadable, not SMPL, or needs chumpy; the message says which."""


class _ArraysOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if module.split(".")[0] == "chumpy":
            raise SMPLFileError("it stores arrays as chumpy objects; chumpy does not run on NumPy >= 1.24. "
                                "Where chumpy works (e.g. pip install chumpy 'numpy<1.24'), run "
                                "`radar-pose smpl-to-npz FILE.pkl FILE.npz` and use the .npz")
        allowed = (module in ("numpy", "numpy.core.multiarray", "numpy._core.multiarray", "numpy.core.numeric",
                              "numpy._core.numeric")
                   or (module.startswith("scipy.sparse") and name.endswith(("_matrix", "_array")))
                   or (module in ("copy_reg", "copyreg") and name == "_reconstructor")
                   or (module == "_codecs" and name == "encode")        # bytes in protocol-2 pickles
                   or (module in ("__builtin__", "builtins") and name == "object"))
        if not allowed:
            raise SMPLFileError(f"it refers to {module}.{name}, which no SMPL file needs; not loading it")
        return super().find_class(module, name)


def load_smpl_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """The model's arrays (SHAPES keys), dense, checked. Raises SMPLFileError."""
    path = Path(path)
    if not path.is_file():
        raise SMPLFileError(f"SMPL model file {path} does not exist. {WHERE_FROM}")
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as npz:
                data = {key: npz[key] for key in npz.files}
        else:
            with path.open("rb") as file:
                data = _ArraysOnlyUnpickler(file, encoding="latin1").load()
    except SMPLFileError as error:
        raise SMPLFileError(f"cannot load SMPL model file {path}: {error}") from None
    except (OSError, EOFError, ValueError, pickle.UnpicklingError, zipfile.BadZipFile, KeyError) as error:
        raise SMPLFileError(f"cannot read SMPL model file {path} ({type(error).__name__}: {error}); "
                            f"is it truncated or not a SMPL file? {WHERE_FROM}") from None
    if not isinstance(data, dict):
        raise SMPLFileError(f"{path} holds a {type(data).__name__}, not the dictionary of a SMPL file")
    return check_smpl_arrays(data, path)


def check_smpl_arrays(data: dict, path: str | Path = "<arrays>") -> dict[str, np.ndarray]:
    """Dense float/int arrays of the SHAPES keys, or SMPLFileError naming what is wrong."""
    arrays = {}
    for key, shape in SHAPES.items():
        if key not in data:
            raise SMPLFileError(f"SMPL model file {path} has no '{key}' (keys: {', '.join(sorted(data))}). "
                                f"{WHERE_FROM}")
        value = data[key]
        value = np.asarray(value.todense() if hasattr(value, "todense") else value)
        if key == "posedirs" and value.shape == (N_VERTICES * 3, 207):
            value = value.reshape(N_VERTICES, 3, 207)
        expected = tuple(value.shape[i] if size is None else size for i, size in enumerate(shape))
        if value.shape != expected or (key == "shapedirs" and value.shape[2] < 10):
            raise SMPLFileError(f"'{key}' in {path} has shape {value.shape}, SMPL's is "
                                f"{tuple('>=10' if s is None else s for s in shape)}; is this a SMPL-H/SMPL-X "
                                f"or other model's file? {WHERE_FROM}")
        arrays[key] = value
    if not all(np.isfinite(arrays[k]).all() for k in ("v_template", "shapedirs", "posedirs", "J_regressor")):
        raise SMPLFileError(f"SMPL model file {path} holds NaN or infinite values")
    return arrays


def convert_smpl_to_npz(source: str | Path, target: str | Path) -> None:
    """Turn an official SMPL pickle (chumpy arrays allowed, if chumpy can be imported) into an .npz of
    plain arrays."""
    if not Path(source).is_file():
        raise SMPLFileError(f"SMPL model file {source} does not exist. {WHERE_FROM}")
    try:
        with Path(source).open("rb") as file:
            data = pickle.load(file, encoding="latin1")   # the user's own trusted file, chumpy inside
    except ModuleNotFoundError as error:
        raise SMPLFileError(f"reading {source} needs {error.name}: run this where `import {error.name}` works "
                            "(chumpy needs numpy < 1.24)") from None
    # A chumpy array's values are its ``r``; sparse matrices are made dense by the check.
    arrays = check_smpl_arrays({k: getattr(v, "r", v) for k, v in data.items() if k in SHAPES}, source)
    np.savez_compressed(target, **arrays)
