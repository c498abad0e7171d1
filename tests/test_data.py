"""The data entry point: every accepted form, and a clear message for every bad input."""

import gzip
import struct
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import shared_file
from core.data import load_dataset
from core.errors import DataError


def _png(path, size=(8, 8), mode="L", value=None, seed=0):
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
    arr = rng.integers(0, 256, shape, dtype=np.uint8) if value is None else np.full(shape, value, np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, mode).save(path)
    return arr


def test_digits_is_upsampled_to_28():
    d = load_dataset("digits")
    assert d.images.shape == (1797, 1, 28, 28) and d.images.dtype == torch.uint8
    assert d.labels.shape == (1797,) and set(d.labels.tolist()) == set(range(10))
    assert d.class_names == [str(i) for i in range(10)]
    assert d.images.max() > 200 and d.images.min() == 0


def test_npz_in_several_layouts(tmp_path):
    imgs = np.random.default_rng(0).integers(0, 256, (10, 12, 12), dtype=np.uint8)
    np.savez(tmp_path / "a.npz", images=imgs, labels=np.arange(10) % 2)
    d = load_dataset(str(tmp_path / "a.npz"))
    assert d.images.shape == (10, 1, 12, 12) and torch.equal(d.images[:, 0], torch.from_numpy(imgs))
    assert d.labels.tolist() == [0, 1] * 5
    np.savez(tmp_path / "b.npz", images=np.stack([imgs] * 3, -1))  # N, H, W, C and no labels
    d = load_dataset(str(tmp_path / "b.npz"))
    assert d.images.shape == (10, 3, 12, 12) and d.labels is None
    np.savez(tmp_path / "c.npz", images=imgs / 255.0)  # floats in [0, 1]
    assert torch.equal(load_dataset(str(tmp_path / "c.npz")).images[:, 0], torch.from_numpy(imgs))
    np.savez(tmp_path / "d.npz", x=imgs)
    with pytest.raises(DataError, match="no 'images' array"):
        load_dataset(str(tmp_path / "d.npz"))


def _write_idx(path, arr, gz=False):
    header = struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + b"".join(struct.pack(">I", s) for s in arr.shape)
    data = header + arr.astype(np.uint8).tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)


@pytest.mark.parametrize("gz", [False, True])
def test_fashion_mnist_from_idx_files(tmp_path, gz):
    rng = np.random.default_rng(1)
    tr, te = rng.integers(0, 256, (6, 28, 28)), rng.integers(0, 256, (4, 28, 28))
    _write_idx(tmp_path / "train-images-idx3-ubyte", tr, gz)
    _write_idx(tmp_path / "train-labels-idx1-ubyte", np.arange(6) % 10, gz)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte", te, gz)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.arange(4) + 5, gz)
    d = load_dataset("fashion-mnist", tmp_path)
    assert d.images.shape == (10, 1, 28, 28)  # train and test joined, train first
    assert np.array_equal(d.images[:6, 0].numpy(), tr) and np.array_equal(d.images[6:, 0].numpy(), te)
    assert d.labels.tolist() == [0, 1, 2, 3, 4, 5, 5, 6, 7, 8]
    assert d.class_names[0] == "T-shirt/top" and d.class_names[9] == "Ankle boot"


def test_truncated_idx_file_is_named(tmp_path):
    for name in ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte"):
        _write_idx(tmp_path / name, np.zeros((2, 28, 28)))
    for name in ("train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte"):
        _write_idx(tmp_path / name, np.zeros(2))
    p = tmp_path / "t10k-images-idx3-ubyte"
    p.write_bytes(p.read_bytes()[:-100])
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte is truncated"):
        load_dataset("mnist", tmp_path)


def test_missing_torchvision_copy_says_how_to_get_it(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    for name in ("mnist", "fashion-mnist", "cifar10", "stl10"):
        with pytest.raises(DataError, match="not found under .*--download"):
            load_dataset(name, root)


def test_fashion_mnist_npz_from_shared_data():
    d = load_dataset("fashion-mnist", shared_file("fashion-mnist.npz"))
    assert d.images.shape == (70000, 1, 28, 28) and d.images.dtype == torch.uint8
    assert np.bincount(d.labels).tolist() == [7000] * 10
    assert d.class_names[7] == "Sneaker"


def test_image_folder_with_class_folders(tmp_path):
    a = _png(tmp_path / "cats" / "1.png", seed=1)
    _png(tmp_path / "cats" / "2.png", seed=2)
    b = _png(tmp_path / "dogs" / "x.jpg", mode="RGB", seed=3)
    (tmp_path / "dogs" / "notes.txt").write_text("not an image")
    d = load_dataset(str(tmp_path))
    assert d.images.shape == (3, 3, 8, 8)  # one colour image: all promoted to RGB
    assert d.class_names == ["cats", "dogs"] and d.labels.tolist() == [0, 0, 1]
    assert np.array_equal(d.images[0, 0].numpy(), a)


def test_flat_folder_has_no_labels(tmp_path):
    for i in range(4):
        _png(tmp_path / f"{i}.png", seed=i)
    d = load_dataset(str(tmp_path))
    assert d.images.shape == (4, 1, 8, 8) and d.labels is None and d.class_names is None


def test_zip_with_split_and_class_folders(tmp_path):
    src = tmp_path / "src"
    for split in ("train", "test"):
        for cls in ("a", "b"):
            _png(src / "set" / split / cls / f"{split}.png", value=100 if cls == "a" else 200)
    archive = tmp_path / "set.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for p in sorted(src.rglob("*.png")):
            z.write(p, p.relative_to(src).as_posix())
    d = load_dataset(str(archive))
    assert d.class_names == ["a", "b"] and np.bincount(d.labels).tolist() == [2, 2]
    assert all(int(d.images[i, 0, 0, 0]) == (100 if d.labels[i] == 0 else 200) for i in range(4))


@pytest.mark.slow
def test_cifar10_zip_loads_through_the_generic_folder_path():
    d = load_dataset("cifar10", shared_file("cifar10-images.zip"), progress=False)
    assert d.images.shape == (60000, 3, 32, 32) and d.images.dtype == torch.uint8
    assert d.class_names == ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                             "truck"]
    assert np.bincount(d.labels).tolist() == [6000] * 10  # train and test joined


def test_corrupt_image_is_named(tmp_path):
    _png(tmp_path / "a" / "good.png")
    (tmp_path / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not a png")
    with pytest.raises(DataError, match="broken.png"):
        load_dataset(str(tmp_path))


def test_mixed_sizes_are_refused_or_resized(tmp_path):
    _png(tmp_path / "a" / "small.png", size=(8, 8))
    _png(tmp_path / "a" / "big.png", size=(16, 12))
    with pytest.raises(DataError, match=r"different sizes.*--image-size"):
        load_dataset(str(tmp_path))
    d = load_dataset(str(tmp_path), image_size=28)
    assert d.images.shape == (2, 1, 28, 28)


def test_named_set_can_be_resized():
    d = load_dataset("digits", image_size=32)
    assert d.images.shape == (1797, 1, 32, 32)


def test_bad_inputs_get_clear_messages(tmp_path):
    with pytest.raises(DataError, match="unknown data set 'cifar100'.*digits"):
        load_dataset("cifar100")
    with pytest.raises(DataError, match="no such file"):
        load_dataset("fashion-mnist", tmp_path / "missing.npz")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no images"):
        load_dataset(str(tmp_path / "empty"))
    _png(tmp_path / "mixed" / "top.png")
    _png(tmp_path / "mixed" / "cls" / "in.png")
    with pytest.raises(DataError, match="some images sit in class folders"):
        load_dataset(str(tmp_path / "mixed"))
    (tmp_path / "bad.zip").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a readable .zip"):
        load_dataset(str(tmp_path / "bad.zip"))
    with pytest.raises(DataError, match="takes no data path"):
        load_dataset("digits", tmp_path)


def test_fashion_mnist_through_torchvisions_own_folder_layout(tmp_path):
    """The download path users get with --download stores torchvision's layout: root/FashionMNIST/raw/*."""
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(2)
    tr, te = rng.integers(0, 256, (5, 28, 28)), rng.integers(0, 256, (3, 28, 28))
    _write_idx(raw / "train-images-idx3-ubyte", tr)
    _write_idx(raw / "train-labels-idx1-ubyte", np.arange(5))
    _write_idx(raw / "t10k-images-idx3-ubyte", te)
    _write_idx(raw / "t10k-labels-idx1-ubyte", np.arange(3) + 7)
    d = load_dataset("fashion-mnist", tmp_path)
    assert d.source.startswith("torchvision:")
    assert d.images.shape == (8, 1, 28, 28) and d.labels.tolist() == [0, 1, 2, 3, 4, 7, 8, 9]
    assert np.array_equal(d.images[5:, 0].numpy(), te)
