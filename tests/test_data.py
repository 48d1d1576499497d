"Loading every named data set from its real on-disk layout, and the errors for bad input."
import warnings
from pathlib import Path
import pytest, torch
from PIL import Image
from dcgan_course.data import gan_dataloaders, find_dataset, DataError, DATASETS
from conftest import make_layout, write_png


@pytest.mark.parametrize('name,channels,n_items', [('mnist', 1, 40), ('cifar10', 3, 12), ('celeba', 3, 12),
                                                   ('flowers', 3, 12), ('cats', 3, 8), ('simpsons', 3, 12)])
def test_named_dataset_layouts(tmp_path, name, channels, n_items):
    folder = make_layout(name, tmp_path)
    assert find_dataset(name, root=tmp_path) == folder
    dls = gan_dataloaders(name, root=tmp_path, size=16, bs=4)
    assert dls.n_channels == channels
    assert len(dls.images) == n_items          # cats: only the capitalised (cat) breeds; mnist: training/ only
    z, img = dls.one_batch()
    assert img.shape == (4, channels, 16, 16) and -1 <= img.min() and img.max() <= 1


def test_named_dataset_labels(tmp_path):
    make_layout('mnist', tmp_path)
    dls = gan_dataloaders('mnist', root=tmp_path, size=16, bs=8, labels=True)
    assert dls.vocab == list('0123456789')
    make_layout('celeba', tmp_path)
    dls = gan_dataloaders('celeba', root=tmp_path, size=16, bs=4, labels='Smiling,Male')
    z, y, img = dls.one_batch()
    assert y.shape == (4, 2) and set(y.unique().tolist()) <= {0., 1.}
    # the attribute rows are the ones of the files: image i has Smiling = bit 0 of i, Male = bit 2
    files = sorted(p.name for p in (tmp_path/'celeba'/'img_align_celeba').iterdir())
    i = 5
    assert dls.labels[i].tolist() == [float(i & 1), float((i >> 2) & 1)], files[i]


def test_missing_named_dataset_says_what_to_download(tmp_path):
    with pytest.raises(DataError, match='celeba data set was not found.*list_attr_celeba'):
        gan_dataloaders('celeba', root=tmp_path)
    with pytest.raises(DataError, match='a known data set'):
        gan_dataloaders('imagenet-21k-not-a-thing')


def test_bad_folders(tmp_path):
    with pytest.raises(DataError, match='Data folder not found'):
        gan_dataloaders(tmp_path/'missing')
    (tmp_path/'empty').mkdir()
    with pytest.raises(DataError, match='No image files found'):
        gan_dataloaders(tmp_path/'empty')
    (tmp_path/'junk').mkdir()
    (tmp_path/'junk'/'a.png').write_bytes(b'\x89PNG but not really')
    (tmp_path/'junk'/'b.jpg').write_text('hello')
    with pytest.raises(DataError, match='None of the 2 image files.*could be read'):
        gan_dataloaders(tmp_path/'junk', cache=False)
    (tmp_path/'file.png').write_text('x')
    with pytest.raises(DataError, match='not a folder'):
        gan_dataloaders(tmp_path/'file.png')


def test_corrupt_files_are_skipped_and_said(tmp_path, capsys):
    for i in range(5): write_png(tmp_path/'imgs'/f'{i}.png', (20, 20), 'L', seed=i)
    (tmp_path/'imgs'/'truncated.png').write_bytes((tmp_path/'imgs'/'0.png').read_bytes()[:40])
    (tmp_path/'imgs'/'notes.txt').write_text('not an image, not even named like one')
    for cache in (tmp_path/'cache', tmp_path/'cache'):      # decoded, then read from the cache: said both times
        dls = gan_dataloaders(tmp_path/'imgs', size=16, bs=5, cache=cache)
        assert len(dls.images) == 5 and [p.name for p in dls.skipped] == ['truncated.png']
        err = capsys.readouterr().err
        assert 'Skipped 1 unreadable image file(s) of 6' in err and 'truncated.png' in err


def test_sizes_and_batch(tmp_path):
    for bad in (0, 24, 8, 100):
        with pytest.raises(DataError, match='power of two'):
            gan_dataloaders('digits', size=bad)
    for i in range(3): write_png(tmp_path/'few'/f'{i}.png', (20, 20), 'L', seed=i)
    with pytest.raises(DataError, match='fewer than one batch'):
        gan_dataloaders(tmp_path/'few', size=16, bs=64, cache=False)


def test_mixed_sizes_and_modes_are_normalised(tmp_path):
    write_png(tmp_path/'m'/'a.png', (50, 30), 'RGB')
    write_png(tmp_path/'m'/'b.png', (16, 16), 'L')
    Image.new('RGBA', (40, 40), (255, 0, 0, 128)).save(tmp_path/'m'/'c.png')
    Image.new('P', (33, 33)).save(tmp_path/'m'/'d.gif')
    dls = gan_dataloaders(tmp_path/'m', size=16, bs=2, cache=False)
    assert dls.images.shape == (4, 3, 16, 16)


def test_disk_cache_round_trip(tmp_path):
    for i in range(4): write_png(tmp_path/'c'/f'{i}.png', (20, 20), 'RGB', seed=i)
    a = gan_dataloaders(tmp_path/'c', size=16, bs=2).images
    assert list((tmp_path/'_cache').glob('images-*.pt'))
    b = gan_dataloaders(tmp_path/'c', size=16, bs=2).images
    assert torch.equal(a, b)
    write_png(tmp_path/'c'/'new.png', (20, 20), 'RGB', seed=9)   # a changed folder is not served from the old cache
    assert len(gan_dataloaders(tmp_path/'c', size=16, bs=2).images) == 5


DISK_RUN = r'''
import sys
import numpy as np, torch
from dcgan_course.disk import DiskImages
from dcgan_course.data import GANDataLoader
def rss():
    with open('/proc/self/status') as f: return next(int(l.split()[1]) for l in f if l.startswith('VmRSS')) * 1024
images = DiskImages(sys.argv[1]) if sys.argv[2] == 'disk' else torch.from_numpy(np.load(sys.argv[1], mmap_mode='r'))
dl = GANDataLoader(images, nz=4, bs=256)
base = peak = rss()
n = 0
for z, img in dl: peak, n = max(peak, rss()), n + len(img)
print(n, peak - base)
'''


def test_disk_images_read_a_big_file_in_flat_memory(tmp_path):
    """An epoch over a 512 MB cache: through a memory map the process grows by about the file; read with DiskImages, it grows by what
    a few batches and the allocator take (76 MB at most in our runs), whatever the file's size."""
    import subprocess, sys
    import numpy as np
    n = 512 * 2**20 // (3 * 64 * 64)
    mm = np.lib.format.open_memmap(tmp_path/'big.npy', mode='w+', dtype=np.uint8, shape=(n, 3, 64, 64))
    for i in range(0, n, 4096): mm[i:i + 4096] = (np.arange(i, min(i + 4096, n)) % 251).astype(np.uint8)[:, None, None, None]
    mm.flush(); del mm
    (tmp_path/'run.py').write_text(DISK_RUN)
    def grow(how):
        r = subprocess.run([sys.executable, str(tmp_path/'run.py'), str(tmp_path/'big.npy'), how], capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
        seen, grew = map(int, r.stdout.split())
        assert seen == n // 256 * 256
        return grew / 2**20
    mapped, disk = grow('mmap'), grow('disk')
    assert mapped > 400, mapped       # the measurement sees the pages a memory map keeps: the test can fail
    assert disk < 150, disk           # a batch is 3 MB of images, 12 MB as floats: bounded, and far below the file


def test_on_disk_cache_gives_the_same_images_and_is_reused(tmp_path, digits_folder, capsys):
    from dcgan_course.disk import DiskImages
    (digits_folder/'3'/'broken.png').write_bytes(b'not a png')
    mem = gan_dataloaders(digits_folder, size=16, bs=16, labels='folder', cache=False)
    first = gan_dataloaders(digits_folder, size=16, bs=16, labels='folder', on_disk=True)
    assert isinstance(first.train.images, DiskImages) and len(first.train.images) == 200
    assert torch.equal(first.train.images[:], mem.train.images) and torch.equal(first.train.labels, mem.train.labels)
    again = gan_dataloaders(digits_folder, size=16, bs=16, labels='folder', on_disk=True)
    assert again.train.images.fname == first.train.images.fname
    assert capsys.readouterr().err.count('Skipped 1 unreadable image file(s) of 201') == 3   # said on every run, cached or not
    assert [str(f) for f in again.train.skipped] == [str(digits_folder/'3'/'broken.png')]
