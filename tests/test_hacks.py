"""The GAN hacks beyond 03_hacks' own checks: bad soft targets, every hack composed, the monitor's check stride, rules and output,
a flip count kept on the device."""
import math, re
import pytest
import torch
from fastai.callback.core import Callback
from fastai.torch_core import set_seed

from dcgan_course.data import gan_dataloaders
from dcgan_course.layers import dcgan_nets
from dcgan_course.learner import DCGANLearner
from dcgan_course.train import dcgan_learner, load_generator, read_metrics
from dcgan_course.hacks import LabelSmoothing, FlipLabels, GANMonitor, SustainedExcess, hack_callbacks


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


class Explode(Callback):
    "The critic's loss scaled by `f` from epoch `start` on: its gradient norm jumps, and stays up."
    def __init__(self, start=1, f=1e4): self.start, self.f = start, f
    def after_loss(self):
        if self.epoch >= self.start and not self.learn.gen_mode: self.learn.loss_grad = self.learn.loss_grad * self.f


class CriticNorms(Callback):
    "Rescale the critic's gradients on each check batch to the next of `norms`: synthetic norms for the monitor."
    order = GANMonitor.order - 1
    def __init__(self, norms): self.norms = list(norms)
    def after_backward(self):
        if self.learn.gen_mode or not self.learn.at_check() or not self.norms: return
        gs = [p.grad for p in self.learn.trained_params() if p.grad is not None]
        n = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(gs)))
        torch._foreach_mul_(gs, self.norms.pop(0) / n)


class Beliefs(Callback):
    "Overwrite D(x) and D(G(z)) from epoch `start` on, after the critic's loss."
    def __init__(self, d_real, d_fake, start=0): self.d_real, self.d_fake, self.start = d_real, d_fake, start
    def after_loss(self):
        if not self.learn.gen_mode and self.epoch >= self.start:
            self.learn.d_real, self.learn.d_fake = torch.tensor(self.d_real), torch.tensor(self.d_fake)


def monitored(dls, cbs=(), epochs=3, check_every=1, lr=2e-4, **kw):
    "A tiny run with a `GANMonitor(**kw)` that measures on every `check_every` batches (by default all)."
    m = GANMonitor(**kw)
    fit(tiny(dls, [m, *cbs], check_every=check_every, lr=lr), epochs)
    return m


def crit_norm_events(m):
    return [(e['epoch'], e['batch']) for e in m.events if e['kind'] == 'grad_norm' and 'critic' in e['message']]


def test_monitor_measures_on_check_batches_only(dls):
    "Gradient norms are taken on the learner's check batches (every `check_every` and the last), named in the events."
    n = len(dls.train)
    want = [i for i in range(n) if (i + 1) % 3 == 0 or i == n - 1]
    assert n == 4 and want == [2, 3]
    m = monitored(dls, [Explode(start=4)], epochs=6, check_every=3)
    checked = [(t['epoch'], t['batch']) for t in m.trace if t['net'] == 'critic']
    assert checked == [(e, i) for e in range(6) for i in want]
    assert crit_norm_events(m) == [(5, 2)]     # after 8 check batches of warm-up, the third excess in a row


def test_rule_one_spike_is_noise():
    w = SustainedExcess()
    assert not any(w.update(x) for x in [20.] * 30 + [500.] + [20.] * 10)
    assert w.level == 20.


def test_rule_sustained_excess_is_an_event_once():
    w = SustainedExcess(ratio=5, n=3)
    fired = [i for i, x in enumerate([20.] * 30 + [150.] * 6 + [20.] * 5) if w.update(x)]
    assert fired == [32]


def test_rule_slow_rise_follows_its_level():
    w = SustainedExcess()
    assert not any(w.update(10 * 1.04 ** i) for i in range(300))   # x130,000 in all, 4% each step


def test_rule_needs_a_warm_up_and_sane_arguments():
    w = SustainedExcess(warmup=8)
    assert not any(w.update(x) for x in [1.] * 7 + [1e6] * 3)
    assert SustainedExcess(warmup=2, n=1).update(1.) is False
    with pytest.raises(ValueError, match='ratio > 1'): SustainedExcess(ratio=0.5)


def test_monitor_one_spike_no_event_sustained_event(dls):
    "Synthetic critic norms through the learner: a spike of 25x the level is noise; four batches of 8x are an event."
    assert len(dls.train) == 4                    # every batch is a check batch (check_every=1): 4 an epoch
    spike = [20.] * 12 + [500.] + [20.] * 11
    assert crit_norm_events(monitored(dls, [CriticNorms(spike)], epochs=6)) == []
    sustained = [20.] * 12 + [160.] * 4 + [20.] * 8
    assert crit_norm_events(monitored(dls, [CriticNorms(sustained)], epochs=6)) == [(3, 2)]   # the 3rd excess


def test_monitor_slow_rise_no_event(dls):
    "Norms that rise 10% every check batch, from 15 to over 130: no event, since the level rises with them."
    m = monitored(dls, [CriticNorms([15 * 1.1 ** i for i in range(24)])], epochs=6)
    assert crit_norm_events(m) == [] and max(t['norm'] for t in m.trace) > 130


@pytest.mark.parametrize('d_real,d_fake,kind', [(0.999, 0.001, 'critic_won'), (0.6, 0.995, 'critic_fooled')])
def test_monitor_d_pinned(dls, d_real, d_fake, kind):
    m = monitored(dls, [Beliefs(d_real, d_fake, start=1)], epochs=4, patience=5)
    assert {e['kind'] for e in m.events} == {kind}
    assert [(e['epoch'], e['batch']) for e in m.events] == [(2, 0), (3, 1)]   # the 5th and 10th pinned steps


def test_healthy_tiny_run_no_event_nothing_printed(dls, capfd):
    m = monitored(dls, epochs=4)
    assert m.events == [] and len(m.trace) == 2 * 4 * len(dls.train)
    assert capfd.readouterr().err == ''


def test_broken_run_one_line_per_epoch_without_paths(dls, capfd):
    "A critic that wins (lr 1e-2 against 1e-5), then explodes: many events, one line an epoch with events, no path."
    m = monitored(dls, [Explode(start=3)], epochs=6, patience=5, lr=[1e-5, 1e-2])
    assert {'critic_won', 'crit_loss', 'grad_norm'} <= {e['kind'] for e in m.events}
    warned = sorted({e['epoch'] for e in m.events})
    assert len(m.events) > len(warned)
    lines = capfd.readouterr().err.splitlines()
    assert [l.split(':')[0] for l in lines] == [f'GANMonitor, epoch {e + 1}' for e in warned]
    assert not [l for l in lines if re.search(r'[\\/]|\.py\b|line \d|Warning', l)], lines
    assert any('gradient norm stayed' in l and 'ganhacks #8' in l for l in lines)


def test_monitor_quiet_with_warn_false(dls, capfd):
    m = monitored(dls, [Explode(start=2)], epochs=4, warn=False)
    assert m.events and capfd.readouterr().err == ''


def test_flip_count_stays_on_device(dls):
    f = FlipLabels(0.5)
    fit(tiny(dls, [f]))
    assert isinstance(f._n_flipped, torch.Tensor) and 0 < f.n_flipped < f.n_seen


@pytest.mark.parametrize('bad', [0, 1, 1.0, -0.5, 2, float('nan'), 'high', None])
def test_ema_decay_is_checked_in_one_place(bad):
    from dcgan_course.hacks import check_ema_decay, GeneratorEMA
    assert check_ema_decay(0.95) == 0.95 and check_ema_decay('0.5') == 0.5
    with pytest.raises(ValueError, match=r'the EMA decay must be (a number )?in \(0, 1\)'): check_ema_decay(bad)
    with pytest.raises(ValueError, match=r'the EMA decay must be (a number )?in \(0, 1\)'): GeneratorEMA(bad)


def test_a_resumed_average_keeps_counting_and_a_checkpoint_without_its_count_is_refused(dls, tmp_path):
    from dcgan_course.hacks import GeneratorEMA
    learn = fit(tiny(dls, [GeneratorEMA(0.99)], path=tmp_path), 1)
    learn.save_checkpoint(tmp_path/'ck.pth', 1)
    again = tiny(dls, [GeneratorEMA(0.99)])
    assert again.load_checkpoint(tmp_path/'ck.pth') == 1 and again.ema_updates == len(dls.train)
    with again.no_bar(), again.no_logging(): again.fit(2, start_epoch=1)
    assert again.ema_updates == 2 * len(dls.train)           # counted on from the checkpoint's count, never estimated
    ck = torch.load(tmp_path/'ck.pth', weights_only=False)
    del ck['ema_updates']; torch.save(ck, tmp_path/'cut.pth')
    with pytest.raises(ValueError, match='not a complete dcgan_course checkpoint: it lacks ema_updates'):
        tiny(dls, [GeneratorEMA(0.99)]).load_checkpoint(tmp_path/'cut.pth')
