"Shared fixtures: small data sets written to disk in the real layouts of the data sets the labs use."
import os, warnings
from pathlib import Path
import numpy as np
import pytest
from PIL import Image

os.environ.setdefault('MPLBACKEND', 'Agg')


def write_png(path, size=(28, 28), mode='L', seed=0):
    rng = np.random.default_rng(seed)
    shape = size[::-1] if mode == 'L' else (*size[::-1], 3)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8), mode).save(path)
    return Path(path)


def make_layout(name, root, n=4):
    "Write `n` tiny images per class in the on-disk layout of data set `name` under `root`; return the image folder."
    root = Path(root)
    if name == 'mnist':
        for d in '0123456789':
            for i in range(n): write_png(root/'mnist_png'/'training'/d/f'{d}{i}.png', (28, 28), 'L', seed=i)
        for i in range(n): write_png(root/'mnist_png'/'testing'/'0'/f't{i}.png', (28, 28), 'L', seed=i)
        return root/'mnist_png'/'training'
    if name == 'cifar10':
        for c in ('airplane', 'cat', 'dog'):
            for i in range(n): write_png(root/'cifar10'/'train'/c/f'{i}_{c}.png', (32, 32), 'RGB', seed=i)
        for i in range(n): write_png(root/'cifar10'/'test'/'cat'/f'{i}_cat.png', (32, 32), 'RGB', seed=i)
        return root/'cifar10'/'train'
    if name == 'celeba':
        d = root/'celeba'/'img_align_celeba'
        lines = []
        for i in range(3 * n):
            f = f'{i + 1:06d}.jpg'
            write_png(d/f, (178, 218), 'RGB', seed=i)
            lines.append(f + ' ' + ' '.join(('1' if (i >> k) & 1 else '-1') for k in range(3)))
        (root/'celeba'/'list_attr_celeba.txt').write_text(f'{len(lines)}\nSmiling Eyeglasses Male\n' + '\n'.join(lines) + '\n')
        return d
    if name == 'flowers':
        for i in range(3 * n): write_png(root/'oxford-102-flowers'/'jpg'/f'image_{i:05d}.jpg', (500, 400), 'RGB', seed=i)
        return root/'oxford-102-flowers'/'jpg'
    if name == 'cats':
        for i in range(n):
            write_png(root/'oxford-iiit-pet'/'images'/f'Abyssinian_{i}.jpg', (300, 200), 'RGB', seed=i)
            write_png(root/'oxford-iiit-pet'/'images'/f'Bengal_{i}.jpg', (300, 200), 'RGB', seed=i)
            write_png(root/'oxford-iiit-pet'/'images'/f'beagle_{i}.jpg', (300, 200), 'RGB', seed=i)
        return root/'oxford-iiit-pet'/'images'
    if name == 'simpsons':
        for i in range(3 * n): write_png(root/'simpsons-faces'/'cropped'/f'{i}.png', (200, 200), 'RGB', seed=i)
        return root/'simpsons-faces'/'cropped'
    raise ValueError(name)


@pytest.fixture
def digits_folder(tmp_path):
    "The real scikit-learn digits (first 200) written as 32 px PNGs in class sub-folders."
    from dcgan_course.data import digits_images
    x, y = digits_images(32)
    for i in range(200):
        d = tmp_path/'digits_png'/str(int(y[i]))
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(x[i, 0].numpy()).save(d/f'{i:04d}.png')
    return tmp_path/'digits_png'


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    "Each test gets its own image/statistics cache, so tests never see each other's files."
    monkeypatch.setenv('DCGAN_CACHE', str(tmp_path/'_cache'))
