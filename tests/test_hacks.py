"Fast tests of the GAN-hack callbacks (dcgan_course.hacks): each fails if its hack did nothing."
import warnings
import pytest
import torch
from torch import nn
from fastai.callback.core import Callback
from fastai.torch_core import set_seed

from dcgan_course.data import gan_dataloaders
from dcgan_course.layers import dcgan_nets
from dcgan_course.learner import DCGANLearner, dcgan_learner, load_generator, read_metrics
from dcgan_course.hacks import (SwapLabels, LabelSmoothing, FlipLabels, InstanceNoise, SkipCritic, GeneratorEMA, GANMonitor,
                                batch_diversity, hack_callbacks)


@pytest.fixture(scope='module')
def dls(): return gan_dataloaders('digits', size=16, bs=32, nz=16, max_items=128)


def tiny(dls, cbs=(), seed=0, net_kwargs=None, **kw):
    set_seed(seed)
    G, D = dcgan_nets(dls, nf=8, **(net_kwargs or {}))
    return DCGANLearner(dls, G, D, cbs=list(cbs), **kw)


def fit(learn, n=1):
    with learn.no_bar(), learn.no_logging(): learn.fit(n)
    return learn


class Spy(Callback):
    "Targets as the loss functions receive them, and the critic's inputs."
    order = 100
    def before_fit(self):
        self.real, self.fake, self.gen, self.inputs = [], [], [], []
        self._orig = crit, gen = self.learn.crit_loss_func, self.learn.gen_loss_func
        def c(rp, fp, rt, ft): self.real.append(rt.clone()); self.fake.append(ft.clone()); return crit(rp, fp, rt, ft)
        def g(fp, t): self.gen.append(t.clone()); return gen(fp, t)
        self.learn.crit_loss_func, self.learn.gen_loss_func = c, g
    def before_critic(self):
        self.inputs.append((self.learn.pct_train, (self.learn.crit_real - self.learn.real).std().item(),
                            (self.learn.crit_fake - self.learn.fake.detach()).std().item()))
    def after_fit(self): self.learn.crit_loss_func, self.learn.gen_loss_func = self._orig


class Steps(Callback):
    def before_fit(self): self.taken = {True: 0, False: 0}
    def after_step(self): self.taken[self.learn.gen_mode] += 1


def test_swap(dls):
    class Beliefs(Callback):
        order = 49
        def before_fit(self): self.rows = []
        def after_batch(self):
            self.rows.append((self.learn.d_real.item(), torch.sigmoid(self.learn.real_pred).mean().item(),
                              self.learn.d_fake.item(), torch.sigmoid(self.learn.fake_pred).mean().item()))
    s, b = Spy(), Beliefs(); fit(tiny(dls, [SwapLabels(), s, b]))
    assert torch.cat(s.real).unique().tolist() == [0.] and torch.cat(s.fake).unique().tolist() == [1.]
    assert torch.cat(s.gen).unique().tolist() == [0.]
    for dr, sr, df, sf in b.rows: assert dr == pytest.approx(1 - sr) and df == pytest.approx(1 - sf)   # metrics keep meaning P(real)


def test_smoothing_ranges_and_mirror(dls):
    s = Spy(); fit(tiny(dls, [LabelSmoothing((0.7, 1.2), fake=(0, 0.3)), s]), 2)
    rt, ft = torch.cat(s.real), torch.cat(s.fake)
    assert 0.7 <= rt.min() < 0.72 and 1.18 < rt.max() <= 1.2
    assert 0 <= ft.min() < 0.02 and 0.28 < ft.max() <= 0.3
    assert torch.cat(s.gen).unique().tolist() == [1.]
    s = Spy(); fit(tiny(dls, [LabelSmoothing((0.7, 1.2)), SwapLabels(), s]))
    rt = torch.cat(s.real)
    assert -0.2 <= rt.min() < -0.15 and 0.25 < rt.max() <= 0.3
    with pytest.raises(ValueError, match='low must not exceed high'): LabelSmoothing((1.2, 0.7))


def test_smoothing_refuses_soft_targets(dls):
    class Soft(Callback):
        order = 1
        def before_critic(self): self.learn.real_target = self.learn.real_target * 0.9
    with pytest.raises(ValueError, match='expects hard 0/1'): fit(tiny(dls, [Soft(), LabelSmoothing(0.9)]))


def test_flip_fraction(dls):
    s, f = Spy(), FlipLabels(0.2)
    fit(tiny(dls, [f, s]), 3)
    rt, ft = torch.cat(s.real), torch.cat(s.fake)
    n_flipped = (rt == 0).sum().item() + (ft == 1).sum().item()
    assert abs(n_flipped / (len(rt) + len(ft)) - 0.2) < 0.04
    assert n_flipped == f.n_flipped
    with pytest.raises(ValueError, match=r'in \[0, 1\]'): FlipLabels(2)


def test_instance_noise_schedule(dls):
    s = Spy(); fit(tiny(dls, [InstanceNoise(0.5), s]), 2)
    for pct, r, f in s.inputs:
        want = 0.5 * (1 - pct)
        assert abs(r - want) < 0.02 and abs(f - want) < 0.02
    assert s.inputs[0][1] > 0.48 and s.inputs[-1][1] < 0.07

    class G(Callback):
        order = 20
        def before_generator(self):
            self.std = (self.learn.gen_fake - self.learn.fake).detach().std().item(); self.grad = self.learn.gen_fake.requires_grad
    g = G(); fit(tiny(dls, [InstanceNoise(0.3, anneal=False), g]))
    assert abs(g.std - 0.3) < 0.02 and g.grad


def test_n_crit_and_skip_critic(dls):
    st = Steps(); fit(tiny(dls, [st], n_crit=2), 2)
    assert st.taken == {False: 2 * len(dls.train), True: len(dls.train)}
    st, sk = Steps(), SkipCritic(0.)
    learn = fit(tiny(dls, [st, sk]), 2)
    assert st.taken == {False: 1, True: 2 * len(dls.train)} and sk.n_skipped == 2 * len(dls.train) - 1
    assert learn.recorder.values[-1][-1] == pytest.approx(1.)
    st, sk = Steps(), SkipCritic(1e9); fit(tiny(dls, [st, sk]))
    assert sk.n_skipped == 0 and st.taken[False] == len(dls.train)


def test_ema_formula(dls):
    class W(Callback):
        order = 70
        def before_fit(self): self.snaps = [[p.detach().clone() for p in self.learn.generator.parameters()]]
        def after_step(self):
            if self.learn.gen_mode: self.snaps.append([p.detach().clone() for p in self.learn.generator.parameters()])
    w, e = W(), GeneratorEMA(0.999)
    learn = fit(tiny(dls, [e, w]), 2)
    avg = [p.clone() for p in w.snaps[0]]
    for n, snap in enumerate(w.snaps[1:]):
        d = min(0.999, (1 + n) / (10 + n))
        avg = [d * a + (1 - d) * p for a, p in zip(avg, snap)]
    for a, p in zip(avg, learn.ema_generator.parameters()): torch.testing.assert_close(a, p, atol=1e-5, rtol=1e-4)
    for b, p in zip(learn.generator.buffers(), learn.ema_generator.buffers()): assert torch.equal(b, p)
    assert max((a - p).abs().max().item() for a, p in zip(avg, learn.generator.parameters())) > 1e-4
    assert learn.sample_generator is learn.ema_generator
    with pytest.raises(ValueError, match='EMA decay'): GeneratorEMA(1.0)


def test_monitor_signs(dls):
    x = torch.randn(16, 1, 8, 8)
    assert batch_diversity(x, x) == pytest.approx(1.) and batch_diversity(x[:1].expand(16, -1, -1, -1), x) == 0

    class Explode(Callback):
        def after_loss(self): self.learn.loss_grad = self.learn.loss_grad * 1e4

    class Won(Callback):
        order = 40
        def after_batch(self):
            if self.learn.crit_loss is not None: self.learn.crit_loss = torch.tensor(1e-4)

    class One(nn.Module):
        def __init__(self, G): super().__init__(); self.G, self.nz = G, G.nz
        def forward(self, z, *c): return self.G(z[:1], *c).expand(len(z), -1, -1, -1)

    for extra, collapse, kind in (([], False, None), ([Explode()], False, 'grad_norm'), ([Won()], False, 'crit_loss'), ([], True, 'collapse')):
        m = GANMonitor(patience=3)
        learn = tiny(dls, [m] + extra)
        if collapse: learn.model.generator = One(learn.model.generator)
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter('always')
            fit(learn)
        msgs = [str(x.message) for x in w if 'GANMonitor' in str(x.message)]
        if kind is None: assert not m.events and not msgs
        else: assert {e['kind'] for e in m.events} == {kind} and len(msgs) == 1
        assert learn.recorder.metric_names[-5:-1] == ['warnings', 'd_grad', 'g_grad', 'diversity']


def test_all_hacks_compose(dls, tmp_path):
    cbs = hack_callbacks(label_smoothing=(0.7, 1.2), fake_smoothing=(0, 0.3), flip_labels=0.05, swap_labels=True, instance_noise=0.1,
                         ema=0.999, skip_critic_above=5.)
    assert [type(c).__name__ for c in cbs] == ['SwapLabels', 'LabelSmoothing', 'FlipLabels', 'InstanceNoise', 'SkipCritic',
                                               'GeneratorEMA', 'GANMonitor']
    s, st = Spy(), Steps()
    set_seed(0)
    learn = dcgan_learner(dls, path=tmp_path, n_crit=2, net_kwargs=dict(nf=8, mbstd=True), cbs=cbs + [s, st])
    with learn.no_bar(), learn.no_logging(): learn.fit(2)
    rt, ft = torch.cat(s.real), torch.cat(s.fake)
    assert (((rt >= -0.2) & (rt <= 0.3)) | ((rt >= 0.7) & (rt <= 1.2))).all()
    assert (((ft >= 0.7) & (ft <= 1)) | ((ft >= 0) & (ft <= 0.3))).all() and (ft < 0.5).any()
    assert torch.cat(s.gen).unique().tolist() == [0.]
    assert s.inputs[0][1] == pytest.approx(0.1, abs=0.01)
    assert st.taken[True] < st.taken[False]
    g = load_generator(tmp_path)
    for a, b in zip(g.parameters(), learn.ema_generator.parameters()): assert torch.equal(a, b)
    row = read_metrics(tmp_path/'metrics.csv')[-1]
    assert {'warnings', 'd_grad', 'g_grad', 'diversity', 'crit_skipped'} <= set(row)
    assert (tmp_path/'samples.png').exists()


def test_monitor_measures_on_check_batches_only(dls):
    "Gradient norms are taken on the learner's check batches (every `check_every` and the last), with the batch named in the event."
    class Explode(Callback):
        def after_loss(self): self.learn.loss_grad = self.learn.loss_grad * 1e4
    m = GANMonitor()
    learn = tiny(dls, [m, Explode()], check_every=3)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter('always')
        fit(learn)
    n = len(dls.train)
    want = {i for i in range(n) if (i + 1) % 3 == 0 or i == n - 1}
    assert {e['batch'] for e in m.events} == want
    assert len(m.events) == 2 * len(want)                 # a critic and a generator norm on each of those batches
    assert learn.recorder.values[-1][-3] > 100            # d_grad


def test_flip_count_stays_on_device(dls):
    f = FlipLabels(0.5)
    fit(tiny(dls, [f]))
    assert isinstance(f._n_flipped, torch.Tensor) and 0 < f.n_flipped < f.n_seen
