"The GAN hacks beyond 03_hacks' own checks: bad soft targets, every hack composed, the monitor's check stride, a flip count kept on the device."
import warnings
import pytest
import torch
from fastai.callback.core import Callback
from fastai.torch_core import set_seed

from dcgan_course.data import gan_dataloaders
from dcgan_course.layers import dcgan_nets
from dcgan_course.learner import DCGANLearner
from dcgan_course.train import dcgan_learner, load_generator, read_metrics
from dcgan_course.hacks import LabelSmoothing, FlipLabels, GANMonitor, hack_callbacks


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



def test_smoothing_refuses_soft_targets(dls):
    class Soft(Callback):
        order = 1
        def before_critic(self): self.learn.real_target = self.learn.real_target * 0.9
    with pytest.raises(ValueError, match='expects hard 0/1'): fit(tiny(dls, [Soft(), LabelSmoothing(0.9)]))



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
