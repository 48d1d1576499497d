"""Loading every named data set from its real on-disk layout, and the errors for bad input: folders with link loops,
images in every mode (16-bit, transparent, palettes), decode caches that are damaged or cannot be written."""
import os, warnings
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


# ---- folders with links, images in every mode, and caches that are damaged or cannot be written

WALK = r'''
import sys
from dcgan_course.data import source_images
x, *_ = source_images(sys.argv[1], 16, cache=False)
print(len(x))
'''


def _limited(mb):
    """A preexec_fn that caps the child's data segment (importing the library takes about 1 GB), so that a walker that runs
    away fails fast instead of filling the machine."""
    def limit():
        import resource
        resource.setrlimit(resource.RLIMIT_DATA, (mb * 2**20, mb * 2**20))
    return limit


def test_link_loops_end_and_each_image_is_read_once(tmp_path):
    "`self -> .` made fastai's walker list every image 41 times; with `up -> ..` beside it, it ran on past 15 GB."
    import subprocess, sys, time
    data = tmp_path/'parent'/'data'
    for i in range(40): write_png(data/f'{i:02d}.png', (20, 20), 'L', seed=i)
    write_png(tmp_path/'parent'/'sibling.png', (20, 20), 'L', seed=99)    # reached through `up`: once
    (data/'self').symlink_to('.')
    (data/'up').symlink_to('..')
    (tmp_path/'walk.py').write_text(WALK)
    t0 = time.time()
    r = subprocess.run([sys.executable, str(tmp_path/'walk.py'), str(data)], capture_output=True, text=True, timeout=300,
                       preexec_fn=_limited(3000))
    assert r.returncode == 0, r.stderr[-2000:]
    assert int(r.stdout.split()[-1]) == 41
    assert time.time() - t0 < 120       # a bound on hanging, not a benchmark: the walk itself takes milliseconds


def test_a_file_reached_twice_is_read_once_under_its_own_name(tmp_path):
    from dcgan_course.data import find_images
    data = tmp_path/'data'
    for c in ('cat', 'dog'):
        for i in range(3): write_png(data/c/f'{i}.png', (20, 20), 'RGB', seed=i)
    (data/'dog'/'also_a_cat.png').symlink_to('../cat/0.png')     # the same file as cat/0.png
    (data/'mirror').symlink_to('cat')                            # the same folder as cat/
    (tmp_path/'more').mkdir(); write_png(tmp_path/'more'/'m.png', (20, 20), 'RGB')
    (data/'more').symlink_to('../more')                          # a folder outside: followed, once
    (data/'more2').symlink_to('../more')
    files = find_images(data)
    assert [str(f.relative_to(data)) for f in files] == ['cat/0.png', 'cat/1.png', 'cat/2.png', 'dog/0.png', 'dog/1.png',
                                                         'dog/2.png', 'more/m.png']
    dls = gan_dataloaders(data, size=16, bs=2, labels='folder', cache=False)
    assert len(dls.images) == 7 and dls.vocab == ['cat', 'dog', 'more']



def test_a_folder_that_cannot_be_listed_is_named(tmp_path, capsys, monkeypatch):
    "As root no folder is unreadable, so listing one fails on purpose; its images are left out, in one line that names it."
    from dcgan_course.data import find_images
    for d in ('a', 'b'): write_png(tmp_path/'data'/d/'0.png', (20, 20), 'L')
    scandir = os.scandir
    def refuse(p='.'):
        if str(p) == str(tmp_path/'data'/'b'): raise PermissionError(13, 'Permission denied', str(p))
        return scandir(p)
    monkeypatch.setattr(os, 'scandir', refuse)
    assert find_images(tmp_path/'data') == [tmp_path/'data'/'a'/'0.png']
    line = _one_line(capsys.readouterr().err, 'Could not list')
    assert f"Could not list 1 folder(s) under {tmp_path/'data'}" in line and f"{tmp_path/'data'/'b'} (Permission denied)" in line
    with pytest.raises(DataError, match='Cannot read the data folder .*Permission denied'):
        find_images(tmp_path/'data'/'b')

def test_sixteen_bit_gray_is_scaled_not_clipped(tmp_path):
    from dcgan_course.data import load_image
    import numpy as np
    v = np.arange(256, dtype=np.uint16).reshape(16, 16) * 256 + 37     # 37 to 65,317: every high byte once
    Image.fromarray(v).save(tmp_path/'a.png')                                            # a 16-bit PNG (mode I;16)
    Image.frombytes('I;16B', (16, 16), v.astype('>u2').tobytes()).save(tmp_path/'b.tif')  # big-endian, as TIFFs store it
    assert Image.open(tmp_path/'a.png').mode == 'I;16' and Image.open(tmp_path/'b.tif').mode == 'I;16B'
    for f in ('a.png', 'b.tif'):
        got = load_image(tmp_path/f, 16, 1)[0]
        assert np.array_equal(got, (v >> 8).astype(np.uint8)), f
        assert np.array_equal(load_image(tmp_path/f, 16, 3), np.repeat(got[None], 3, 0)), f


def test_transparent_pixels_become_black(tmp_path):
    from dcgan_course.data import load_image
    import numpy as np
    a = np.zeros((16, 16, 4), np.uint8)
    a[..., :3] = (30, 200, 90)                  # the colour the transparent pixels hide
    a[:8, :, 3] = 255; a[8:12, :, 3] = 0; a[12:, :, 3] = 128
    Image.fromarray(a, 'RGBA').save(tmp_path/'rgba.png')
    got = load_image(tmp_path/'rgba.png', 16, 3)
    assert (got[:, :8] == np.array([30, 200, 90])[:, None, None]).all()
    assert (got[:, 8:12] == 0).all()
    assert np.abs(got[:, 12:].astype(int) - np.array([15, 100, 45])[:, None, None]).max() <= 1
    la = np.zeros((16, 16, 2), np.uint8); la[..., 0] = 250; la[:, 8:, 1] = 255
    Image.fromarray(la, 'LA').save(tmp_path/'la.png')
    g = load_image(tmp_path/'la.png', 16, 1)[0]
    assert (g[:, :8] == 0).all() and (g[:, 8:] == 250).all()


def test_palette_images(tmp_path):
    from dcgan_course.data import load_image, guess_channels
    import numpy as np
    p = Image.new('P', (16, 16))
    p.putpalette([200, 10, 10, 10, 200, 10, 0, 0, 255])
    for y in range(16):
        for x in range(16): p.putpixel((x, y), (x // 8) + 2 * (y >= 8))   # red | green on top, blue (transparent) | green below
    p.save(tmp_path/'t.png', transparency=2)
    p.save(tmp_path/'o.gif')                                                # the same picture, nothing transparent
    got, opaque = load_image(tmp_path/'t.png', 16, 3), load_image(tmp_path/'o.gif', 16, 3)
    assert got[:, 0, 0].tolist() == [200, 10, 10] and got[:, 0, 15].tolist() == [10, 200, 10]
    assert got[:, 15, 0].tolist() == [0, 0, 0] and opaque[:, 15, 0].tolist() == [0, 0, 255]
    gray = Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16)).convert('P')   # a palette of 256 grays
    gray.save(tmp_path/'g.png')
    assert Image.open(tmp_path/'g.png').mode == 'P'
    assert guess_channels([tmp_path/'g.png']) == 1 and guess_channels([tmp_path/'g.png', tmp_path/'t.png']) == 3
    assert load_image(tmp_path/'g.png', 16, 1)[0, 3, 5] == 3 * 16 + 5


def test_one_colour_image_makes_a_folder_colour(tmp_path):
    for i in range(40): write_png(tmp_path/'m'/f'a{i:02d}.png', (20, 20), 'L', seed=i)     # gray first, in sorted order
    for i in range(40): write_png(tmp_path/'m'/f'b{i:02d}.png', (20, 20), 'RGB', seed=i)
    dls = gan_dataloaders(tmp_path/'m', size=16, bs=8, cache=False)
    assert dls.n_channels == 3 and len(dls.images) == 80
    gray = dls.images[:40]
    assert (gray[:, 0] == gray[:, 1]).all() and not (dls.images[40:, 0] == dls.images[40:, 1]).all()


def _one_line(err, text):
    lines = [l for l in err.splitlines() if text in l]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize('spoil', ['truncated', 'not a zip', 'code inside'])
def test_a_damaged_pt_cache_is_named_moved_aside_and_rebuilt(tmp_path, capsys, spoil):
    for i in range(6): write_png(tmp_path/'c'/f'{i}.png', (20, 20), 'RGB', seed=i)
    fresh = gan_dataloaders(tmp_path/'c', size=16, bs=2, cache=False).images
    gan_dataloaders(tmp_path/'c', size=16, bs=2, cache=tmp_path/'cache')
    fn, = (tmp_path/'cache').glob('images-*.pt')
    if spoil == 'truncated': fn.write_bytes(fn.read_bytes()[:fn.stat().st_size // 2])
    elif spoil == 'not a zip': fn.write_bytes(b'\x00' * 100)
    else: torch.save({'images': fresh, 'files': [], 'x': warnings.WarningMessage}, fn)   # a class: weights_only refuses it
    capsys.readouterr()
    again = gan_dataloaders(tmp_path/'c', size=16, bs=2, cache=tmp_path/'cache').images
    line = _one_line(capsys.readouterr().err, 'decode cache')
    assert line.startswith(f"the decode cache {fn} is damaged (") and line.endswith(f"moved aside to {fn}.bad, decoding again")
    if spoil == 'code inside': assert '(it holds a warnings.WarningMessage, which a safe load refuses)' in line
    assert torch.equal(again, fresh)
    assert (tmp_path/'cache'/f'{fn.name}.bad').exists()
    d = torch.load(fn, map_location='cpu', weights_only=True)          # written again, whole
    assert torch.equal(d['images'], fresh)
    assert torch.equal(gan_dataloaders(tmp_path/'c', size=16, bs=2, cache=tmp_path/'cache').images, fresh)
    assert 'decode cache' not in capsys.readouterr().err                  # and read from then on, without a word


@pytest.mark.parametrize('spoil', ['npy truncated', 'json cut', 'json lies'])
def test_a_damaged_npy_cache_is_named_moved_aside_and_rebuilt(tmp_path, capsys, spoil):
    for i in range(6): write_png(tmp_path/'c'/f'{i}.png', (20, 20), 'RGB', seed=i)
    fresh = gan_dataloaders(tmp_path/'c', size=16, bs=2, cache=False).images
    gan_dataloaders(tmp_path/'c', size=16, bs=2, cache=tmp_path/'cache', on_disk=True)
    fn, = (tmp_path/'cache').glob('images-*.npy')
    js = fn.with_suffix('.json')
    bad = fn if spoil == 'npy truncated' else js
    if spoil == 'npy truncated': fn.write_bytes(fn.read_bytes()[:-500])
    elif spoil == 'json cut': js.write_text(js.read_text()[:30])
    else: js.write_text('{"n": 7, "files": [], "skipped": []}')
    capsys.readouterr()
    again = gan_dataloaders(tmp_path/'c', size=16, bs=2, cache=tmp_path/'cache', on_disk=True).images
    line = _one_line(capsys.readouterr().err, 'decode cache')
    assert line.startswith(f"the decode cache {bad} is damaged (") and line.endswith(f"moved aside to {bad}.bad, decoding again")
    assert bad.with_name(bad.name + '.bad').exists()
    assert torch.equal(again[:], fresh)
    assert torch.equal(gan_dataloaders(tmp_path/'c', size=16, bs=2, cache=tmp_path/'cache', on_disk=True).images[:], fresh)
    assert 'decode cache' not in capsys.readouterr().err


def test_an_unwritable_cache_folder_falls_back_to_memory(tmp_path, capsys, monkeypatch):
    import errno
    import dcgan_course.data as data, dcgan_course.disk as disk
    for i in range(6): write_png(tmp_path/'c'/f'{i}.png', (20, 20), 'RGB', seed=i)
    fresh = gan_dataloaders(tmp_path/'c', size=16, bs=2, cache=False).images
    def refuse(obj, fname, *args, **kwargs): raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(fname))
    monkeypatch.setattr(data, 'atomic_save', refuse)
    capsys.readouterr()
    x = gan_dataloaders(tmp_path/'c', size=16, bs=2, cache=tmp_path/'cache').images
    line = _one_line(capsys.readouterr().err, 'decode cache')
    assert line.startswith(f"the decode cache folder {tmp_path/'cache'} cannot be written (OSError: Read-only file system)")
    assert torch.equal(x, fresh)
    monkeypatch.setattr(disk, 'atomic_write', refuse)                   # on_disk=True has nowhere else to go: one clear error
    with pytest.raises(DataError, match=f"the decode cache folder {tmp_path/'cache'} cannot be written .*Read-only file system"):
        gan_dataloaders(tmp_path/'c', size=16, bs=2, cache=tmp_path/'cache', on_disk=True)


def test_a_read_only_cache_folder_falls_back_to_memory(tmp_path, capsys):
    "The same on a real read-only file system (as root, chmod does not stop a write): skipped where mounting is not allowed."
    import subprocess
    ro = tmp_path/'ro'
    ro.mkdir()
    if subprocess.run(['mount', '-t', 'tmpfs', '-o', 'ro,size=1m', 'tmpfs', str(ro)], capture_output=True).returncode != 0:
        pytest.skip('cannot mount a read-only tmpfs here')
    try:
        for i in range(6): write_png(tmp_path/'c'/f'{i}.png', (20, 20), 'RGB', seed=i)
        fresh = gan_dataloaders(tmp_path/'c', size=16, bs=2, cache=False).images
        capsys.readouterr()
        x = gan_dataloaders(tmp_path/'c', size=16, bs=2, cache=ro).images
        line = _one_line(capsys.readouterr().err, 'decode cache')
        assert line.startswith(f"the decode cache folder {ro} cannot be written (") and 'Read-only file system' in line
        assert torch.equal(x, fresh)
        with pytest.raises(DataError, match=f"the decode cache folder {ro} cannot be written"):
            gan_dataloaders(tmp_path/'c', size=16, bs=2, cache=ro, on_disk=True)
    finally:
        subprocess.run(['umount', str(ro)])


def test_disk_is_below_data_and_errors_name_parameters():
    "`disk` (the `.npy` file) imports nothing of `data`; the loader's errors name `bs=`, not a command-line flag."
    import ast, dcgan_course.disk as disk
    from dcgan_course.data import GANDataLoader
    tree = ast.parse(open(disk.__file__).read())
    own = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 1}
    assert own == {'core'}, own
    x = torch.zeros(10, 1, 16, 16, dtype=torch.uint8)
    with pytest.raises(DataError, match=r'use a smaller batch size, bs=$'): GANDataLoader(x, bs=64)
    with pytest.raises(DataError, match=r'\(use a smaller batch size, bs=\)'): GANDataLoader(x, bs=4).shard(0, 3)


def test_loader_scaling_is_bit_exact(tmp_path):
    "Batches and `real_batch` in [-1, 1] are exactly `x / 127.5 - 1` of the uint8 images, as a plain loop computes it."
    from dcgan_course.data import GANDataLoader
    x = torch.arange(256, dtype=torch.uint8).repeat(4).view(4, 1, 16, 16)
    dl = GANDataLoader(x, bs=2, shuffle=False)
    want = x.float() / 127.5 - 1                            # the course's formula, in float32, as the learner's tests loop it
    assert not torch.equal(want, x.float() * (1 / 127.5) - 1)  # another formula differs in the last bits: the test can fail
    assert torch.equal(dl.real_batch(4), want)
    assert torch.equal(torch.cat([b[-1] for b in dl]), want)
