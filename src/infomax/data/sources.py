"""Where datasets come from: ``load_dataset`` reads named datasets (torchvision, synthetic),
``.npz`` files and image folders; ``check_splits`` says early whether the splits a run needs are
there. (Batching is :mod:`infomax.data.loader`.)

Everything ends as an :class:`ArrayDataset` (uint8 ``(N, C, H, W)`` in memory). torchvision
datasets are converted once and cached as ``<root>/<name>-<split>.npz`` so later loads skip the
Python decoding.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
import torch.nn.functional as F

from infomax.data.dataset import ArrayDataset
from infomax.data.synthetic import SYNTHETIC_SPLITS, make_synthetic

__all__ = [
    "DATASETS",
    "IMAGE_EXTENSIONS",
    "check_splits",
    "decode_image",
    "load_dataset",
    "load_npz",
    "load_image_folder",
    "default_root",
    "resize_images",
]

IMAGE_EXTENSIONS = (
    ".png",
    ".jpg",
    ".jpeg",
    ".bmp",
    ".gif",
    ".webp",
    ".tif",
    ".tiff",
    ".ppm",
    ".pgm",
    ".pbm",
)

# name -> (torchvision class, splits, where torchvision keeps the files, source URL)
_TORCHVISION = {
    "cifar10": (
        "CIFAR10",
        ("train", "test"),
        "cifar-10-batches-py",
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    ),
    "cifar100": (
        "CIFAR100",
        ("train", "test"),
        "cifar-100-python",
        "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
    ),
    "stl10": (
        "STL10",
        ("train", "test", "unlabeled", "train+unlabeled"),
        "stl10_binary",
        "http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz",
    ),
    "mnist": (
        "MNIST",
        ("train", "test"),
        "MNIST/raw",
        "https://ossci-datasets.s3.amazonaws.com/mnist/ (torchvision's mirror)",
    ),
}
DATASETS = (*_TORCHVISION, "synthetic")
_ALIASES = {"cifar-10": "cifar10", "cifar-100": "cifar100", "stl-10": "stl10"}


def default_root() -> Path:
    """``$INFOMAX_DATA`` if set, else ``~/.cache/infomax``."""
    return Path(os.environ.get("INFOMAX_DATA") or "~/.cache/infomax").expanduser()


def _valid_names_message(name: str) -> str:
    return (
        f"unknown dataset {name!r}: valid names are {', '.join(DATASETS)}; a path to an .npz "
        "file (x_train, y_train, x_test, y_test) or to a folder of images (optionally one "
        "sub-folder per class) is accepted too"
    )


def load_dataset(
    name_or_path: str | os.PathLike,
    split: str = "train",
    root: str | os.PathLike | None = None,
    download: bool = False,
    image_size: int | None = None,
    cache: bool = True,
) -> ArrayDataset:
    """Load a dataset into memory as an :class:`ArrayDataset`.

    Args:
        name_or_path: ``cifar10``, ``cifar100``, ``stl10``, ``mnist`` (torchvision),
            ``synthetic`` (built in, generated from a fixed seed: 5,000 train / 1,000 test images
            of 10 pattern classes, 32x32 RGB), a path to an ``.npz`` file, or a path to a folder
            of images.
        split: ``train`` or ``test``; STL-10 also ``unlabeled`` and ``train+unlabeled``
            (unlabeled images get label -1). For a folder, ``<folder>/<split>`` is used when it
            exists.
        root: where torchvision datasets and caches live (default ``$INFOMAX_DATA`` or
            ``~/.cache/infomax``). ``<root>/<name>.npz`` in the ``.npz`` layout is used if present.
        download: let torchvision download a missing named dataset.
        image_size: resize (smaller edge, antialiased) and centre-crop every image to
            ``image_size x image_size``; needed for folders whose images differ in size. For
            ``synthetic`` the images are generated at this size.
        cache: save converted torchvision datasets as ``<root>/<name>-<split>.npz``.

    Raises:
        ValueError: unknown name, bad split, malformed file, unreadable image.
        FileNotFoundError: a named dataset that is absent and cannot be downloaded, or a path
            that does not exist.
    """
    if image_size is not None and int(image_size) <= 0:
        raise ValueError(f"image_size must be a positive integer, got {image_size}")
    text = os.fspath(name_or_path)
    key = _ALIASES.get(text.lower(), text.lower())
    path = Path(text).expanduser()
    looks_like_path = (
        os.sep in text
        or (os.altsep is not None and os.altsep in text)
        or text.endswith(".npz")
        or text.startswith(".")
        or text.startswith("~")
    )
    if key in DATASETS and not (looks_like_path and path.exists()):
        if key == "synthetic":
            return _load_synthetic(split, image_size)
        return _load_torchvision(key, split, root, download, image_size, cache)
    if path.exists():
        if path.is_dir():
            return load_image_folder(path, split=split, image_size=image_size)
        if path.suffix.lower() == ".npz":
            return load_npz(path, split=split, image_size=image_size)
        raise ValueError(
            f"{path} is a file but not an .npz archive: pass an .npz (x_train, y_train, x_test, "
            "y_test) or a folder of images"
        )
    if looks_like_path:
        raise FileNotFoundError(f"no such file or folder: {path}")
    raise ValueError(_valid_names_message(text))


def _available_splits(name_or_path: str | os.PathLike, split: str) -> tuple[str, ...] | None:
    """The splits a dataset offers (``None``: any split serves, e.g. a folder without split
    sub-folders or an archive of one split), read without loading any image."""
    text = os.fspath(name_or_path)
    key = _ALIASES.get(text.lower(), text.lower())
    path = Path(text).expanduser()
    if key in DATASETS and not path.exists():
        return tuple(SYNTHETIC_SPLITS) if key == "synthetic" else _TORCHVISION[key][1]
    if path.is_dir():
        subs = tuple(d.name for d in path.iterdir() if d.is_dir())
        return None if split in subs or not {"train", "test"} & set(subs) else subs
    if path.suffix.lower() == ".npz" and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                files = z.files
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read {path} as an .npz archive: {exc}") from exc
        splits = tuple(k[2:] for k in files if k.startswith("x_"))
        return None if "images" in files and not splits else splits
    return None  # a missing path: load_dataset names the problem


def check_splits(
    name_or_path: str | os.PathLike,
    splits: Sequence[str],
    root: str | os.PathLike | None = None,
    fix: str = "choose one of its splits",
) -> None:
    """A ValueError naming the dataset, the missing split, the splits it has and ``fix`` when one
    of ``splits`` is not in ``name_or_path``; reads only file names and archive indexes (call it
    before training, so a run does not train fully and then fail at evaluation).

    A folder of images without split sub-folders, and an archive of one split (``images``,
    ``labels``), serve every split. ``root`` is accepted for the named datasets' signature.
    """
    del root  # named datasets: their splits are fixed, whatever the root holds
    for split in dict.fromkeys(splits):
        have = _available_splits(name_or_path, split)
        if have is not None and split not in have:
            listed = ", ".join(have) if have else "none"
            raise ValueError(
                f"{os.fspath(name_or_path)} has no split {split!r} (its splits: {listed}); {fix}"
            )


# ----------------------------------------------------------------------------------------------
# synthetic


def _load_synthetic(split: str, image_size: int | None) -> ArrayDataset:
    if split not in SYNTHETIC_SPLITS:
        raise ValueError(f"synthetic has splits {', '.join(SYNTHETIC_SPLITS)}, got split={split!r}")
    n, seed = SYNTHETIC_SPLITS[split]
    return make_synthetic(n, seed=seed, image_size=image_size or 32)


# ----------------------------------------------------------------------------------------------
# resizing


def resize_images(images: torch.Tensor, size: int, chunk: int = 1024) -> torch.Tensor:
    """Resize uint8 ``(N, C, H, W)`` so the smaller edge is ``size`` (bilinear, antialiased),
    centre-crop to ``size x size``, round back to uint8. Done in chunks to bound memory."""
    n, c, h, w = images.shape
    if (h, w) == (size, size):
        return images
    if h <= w:
        oh, ow = size, max(size, int(round(size * w / h)))
    else:
        oh, ow = max(size, int(round(size * h / w))), size
    out = torch.empty((n, c, size, size), dtype=torch.uint8)
    top, left = (oh - size) // 2, (ow - size) // 2
    for start in range(0, n, chunk):
        x = images[start : start + chunk].float()
        if (oh, ow) != (h, w):
            x = F.interpolate(
                x, size=(oh, ow), mode="bilinear", align_corners=False, antialias=True
            )
        x = x[..., top : top + size, left : left + size]
        out[start : start + chunk] = x.round_().clamp_(0, 255).to(torch.uint8)
    return out


def _finish(images: torch.Tensor, labels, classes, image_size: int | None) -> ArrayDataset:
    if image_size is not None:
        images = resize_images(images, int(image_size))
    return ArrayDataset(images.contiguous(), labels, classes)


# ----------------------------------------------------------------------------------------------
# .npz


def _to_nchw(x: np.ndarray, where: str) -> torch.Tensor:
    if x.dtype != np.uint8:
        raise ValueError(f"{where} must be uint8 images, got dtype {x.dtype}")
    if x.ndim == 3:  # N x H x W grayscale
        x = x[:, None]
    elif x.ndim == 4:
        if x.shape[-1] in (1, 3):  # the documented layout N x H x W x C
            x = x.transpose(0, 3, 1, 2)
        elif x.shape[1] not in (1, 3):
            raise ValueError(
                f"{where} must have 1 or 3 channels in N x H x W x C layout, got {x.shape}"
            )
    else:
        raise ValueError(
            f"{where} must have shape N x H x W x C (or N x H x W for grayscale), got {x.shape}"
        )
    return torch.from_numpy(np.ascontiguousarray(x))


def _images_layout(x: np.ndarray, where: str) -> torch.Tensor:
    """The ``images`` array of an archive: the cache layout N x C x H x W, or N x H x W x C
    (recognised by 1 or 3 channels last and not second), or N x H x W grayscale."""
    if x.ndim == 4 and x.shape[1] not in (1, 3) and x.shape[-1] in (1, 3):
        x = x.transpose(0, 3, 1, 2)
    elif x.ndim == 3:
        x = x[:, None]
    elif x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(
            f"{where} must be uint8 images N x C x H x W or N x H x W x C with 1 or 3 channels "
            f"(or N x H x W), got shape {x.shape}"
        )
    return torch.from_numpy(np.ascontiguousarray(x))


def load_npz(
    path: str | os.PathLike, split: str = "train", image_size: int | None = None
) -> ArrayDataset:
    """An ``.npz`` with ``x_<split>`` (uint8 N x H x W x C, or N x H x W) and ``y_<split>``
    (optional; missing -> unlabeled), optional ``classes``; or ``images`` (N x C x H x W, the
    layout :meth:`ArrayDataset.save_npz` writes, or N x H x W x C), ``labels``, ``classes``: an
    archive of one split, returned whatever ``split`` is asked for."""
    path = Path(path)
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read {path} as an .npz archive: {exc}") from exc
    with archive as z:
        keys = set(z.files)
        classes = [str(c) for c in z["classes"].tolist()] if "classes" in keys else None
        if f"x_{split}" in keys:
            images = _to_nchw(z[f"x_{split}"], f"{path.name}:x_{split}")
            ykey = f"y_{split}"
            labels = torch.from_numpy(z[ykey].astype(np.int64)).flatten() if ykey in keys else None
        elif "images" in keys:
            images = _images_layout(z["images"], f"{path.name}:images")
            labels = torch.from_numpy(z["labels"].astype(np.int64)) if "labels" in keys else None
        else:
            splits = sorted(k[2:] for k in keys if k.startswith("x_"))
            if splits:
                raise ValueError(
                    f"{path} has no split {split!r}; its splits are {', '.join(splits)}"
                )
            raise ValueError(
                f"{path} has arrays {sorted(keys)}; expected x_train, y_train, x_test, y_test "
                "(uint8 N x H x W x C images, integer labels) and optionally classes"
            )
    if images.dtype != torch.uint8:
        raise ValueError(f"{path}: images must be uint8, got {images.dtype}")
    if classes is None and labels is not None and labels.numel() and int(labels.max()) >= 0:
        classes = [str(i) for i in range(int(labels.max()) + 1)]
    if labels is not None and labels.shape[0] != images.shape[0]:
        raise ValueError(
            f"{path}: {images.shape[0]} images but {labels.shape[0]} labels for split {split!r}"
        )
    return _finish(images, labels, classes, image_size)


# ----------------------------------------------------------------------------------------------
# image folders


def _is_image(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")


def decode_image(
    path: str | os.PathLike | BinaryIO,
    image_size: int | None = None,
    mode: str = "RGB",
    draft: bool = False,
    exif_transpose: bool = False,
) -> np.ndarray:
    """One image (a file name or a binary file object) as uint8 ``(H, W, C)``: ``mode`` ``RGB``
    gives C = 3, ``L`` (grey) C = 1.

    With ``image_size`` the smaller edge is resized to ``image_size`` (bicubic) and the image
    centre-cropped to ``image_size x image_size``. ``draft``: a JPEG decodes at the smallest DCT
    scale that still covers ``image_size`` (several times faster for large photos; the pixels
    differ slightly from a full decode). ``exif_transpose``: turn the image upright as its EXIF
    orientation says (photos from phones and cameras).

    Raises:
        ValueError: the file cannot be read as an image (damaged, truncated, not an image).
    """
    from PIL import Image, ImageOps

    if mode not in ("RGB", "L"):
        raise ValueError(f"mode must be RGB or L, got {mode!r}")
    try:
        with Image.open(path) as im:
            if draft and image_size is not None:
                im.draft(mode, (image_size, image_size))
            if exif_transpose:
                im = ImageOps.exif_transpose(im)
            im = im.convert(mode)
            if image_size is not None:
                w, h = im.size
                if (w, h) != (image_size, image_size):
                    scale = image_size / min(w, h)
                    nw, nh = max(image_size, round(w * scale)), max(image_size, round(h * scale))
                    im = im.resize((nw, nh), Image.Resampling.BICUBIC)
                    im = (
                        ImageOps.fit(im, (image_size, image_size), centering=(0.5, 0.5))
                        if (nw, nh) != (image_size, image_size)
                        else im
                    )
            a = np.asarray(im, dtype=np.uint8)
    except Exception as exc:  # PIL raises many types for broken files
        raise ValueError(f"cannot read image {path}: {exc}") from exc
    return a[:, :, None] if a.ndim == 2 else a


def _decode(path: Path, image_size: int | None) -> np.ndarray:
    return decode_image(path, image_size)


def load_image_folder(
    folder: str | os.PathLike, split: str | None = None, image_size: int | None = None
) -> ArrayDataset:
    """Images in ``folder`` (or ``folder/<split>`` when that sub-folder exists), decoded with PIL
    and converted to RGB.

    Layouts: ``folder/<class>/<image>`` (one sub-folder per class, searched recursively; the
    classes are the sorted sub-folder names) or ``folder/<image>`` (unlabeled, labels -1). Images
    directly in ``folder`` next to class sub-folders are unlabeled. With ``image_size`` each image
    is resized (smaller edge, bicubic) and centre-cropped to ``image_size x image_size``; without
    it all images must have the same size.
    """
    folder = Path(folder).expanduser()
    if split is not None:
        check_splits(folder, [split])  # train/ and no test/: no silent use of the whole folder
        if (folder / split).is_dir():
            folder = folder / split
    if not folder.is_dir():
        raise FileNotFoundError(f"no such folder: {folder}")
    class_dirs = sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    files: list[Path] = sorted(p for p in folder.iterdir() if _is_image(p))
    labels: list[int] = [-1] * len(files)
    classes: list[str] = []
    for d in class_dirs:
        found = sorted(p for p in d.rglob("*") if _is_image(p))
        if found:
            labels += [len(classes)] * len(found)
            classes.append(d.name)
            files += found
    if not files:
        raise ValueError(
            f"no images found in {folder} (extensions {', '.join(IMAGE_EXTENSIONS)}); expected "
            "folder/<class>/<image> or folder/<image>"
        )
    workers = min(8, os.cpu_count() or 1)
    if workers > 1 and len(files) > 64:
        with ThreadPoolExecutor(workers) as pool:
            arrays = list(pool.map(lambda p: _decode(p, image_size), files))
    else:
        arrays = [_decode(p, image_size) for p in files]
    sizes = {a.shape[:2] for a in arrays}
    if len(sizes) > 1:
        by_size: dict[tuple[int, ...], Path] = {}
        for a, p in zip(arrays, files):
            by_size.setdefault(a.shape[:2], p)
        examples = ", ".join(f"{p.name} is {s[1]}x{s[0]}" for s, p in list(by_size.items())[:3])
        n = min(min(s) for s in by_size)
        raise ValueError(
            f"images in {folder} differ in size ({examples}): resize and centre-crop them to one "
            f"size, e.g. {n}x{n}: data.image_size={n} for infomax train, --image-size {n} for "
            f"infomax eval / neighbors / embed, image_size={n} in Python"
        )
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    return ArrayDataset(images, torch.tensor(labels, dtype=torch.int64), classes)


# ----------------------------------------------------------------------------------------------
# torchvision datasets


def _missing_message(name: str, split: str, root: Path, reason: str) -> str:
    cls, _, sub, url = _TORCHVISION[name]
    return (
        f"{name} (split {split!r}) is not available under {root}: {reason}. The torchvision files "
        f"are expected in {root / sub}. To get them: set data.download=true (infomax train; "
        f"load_dataset(..., download=True) in Python), or "
        f"download {url} and extract it into {root}, or put an .npz with x_train, y_train, "
        f"x_test, y_test (uint8 N x H x W x C) at {root / (name + '.npz')}"
    )


def _load_torchvision(
    name: str, split: str, root, download: bool, image_size: int | None, cache: bool
) -> ArrayDataset:
    cls_name, splits, _, _ = _TORCHVISION[name]
    if split not in splits:
        raise ValueError(f"{name} has splits {', '.join(splits)}, got split={split!r}")
    root = Path(root).expanduser() if root is not None else default_root()
    # 1. a user-provided archive in the .npz layout
    user_npz = root / f"{name}.npz"
    if user_npz.is_file():
        with np.load(user_npz) as z:
            has_split = f"x_{split}" in z.files
        if has_split:
            return load_npz(user_npz, split, image_size)
    # 2. our cache of an earlier conversion
    cache_file = root / f"{name}-{split}.npz"
    if cache_file.is_file():
        return _finish(*_read_cache(cache_file), image_size)
    # 3. torchvision (download if asked)
    import torchvision.datasets as tvd

    cls = getattr(tvd, cls_name)
    try:
        if name == "stl10":
            ds = cls(str(root), split=split, download=download)
        else:
            ds = cls(str(root), train=(split == "train"), download=download)
    except Exception as exc:  # RuntimeError (missing), URLError/OSError (offline), ...
        reason = "download failed" if download else "the files are absent and download=False"
        raise FileNotFoundError(
            _missing_message(name, split, root, f"{reason} ({type(exc).__name__}: {exc})")
        ) from exc
    images, labels, classes = _convert(name, ds)
    if cache:
        try:
            ArrayDataset(images, labels, classes).save_npz(cache_file)
        except OSError:
            pass  # a read-only root: no cache
    return _finish(images, labels, classes, image_size)


def _read_cache(path: Path) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    with np.load(path, allow_pickle=False) as z:
        images = torch.from_numpy(z["images"])
        labels = torch.from_numpy(z["labels"].astype(np.int64))
        classes = [str(c) for c in z["classes"].tolist()]
    return images, labels, classes


def _convert(name: str, ds) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """torchvision dataset -> uint8 (N, C, H, W), int64 labels, class names."""
    data = ds.data
    data = data.numpy() if isinstance(data, torch.Tensor) else np.asarray(data)
    if name == "stl10":  # already N x 3 x 96 x 96
        images = torch.from_numpy(np.ascontiguousarray(data))
        labels = torch.as_tensor(np.asarray(ds.labels), dtype=torch.int64)
        labels = torch.where(labels < 0, torch.full_like(labels, -1), labels)
    else:
        images = _to_nchw(data.astype(np.uint8, copy=False), f"{name} data")
        labels = torch.as_tensor(np.asarray(ds.targets), dtype=torch.int64)
    classes: Sequence[str] = list(getattr(ds, "classes", []))
    return images.contiguous(), labels, [str(c) for c in classes]
