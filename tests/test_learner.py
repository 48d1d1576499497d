"The learner's guarantees: frozen networks stay bit-identical, NaN stops training without losing the checkpoint, resume is exact."
import copy
from pathlib import Path
import pytest, torch
from fastai.callback.core import Callback
from fastai.optimizer import Adam
from fastai.torch_core import set_seed
from functools import partial
from dcgan_course.data import gan_dataloaders
from dcgan_course.layers import Generator, Critic
from dcgan_course.learner import dcgan_learner, NonFiniteLossError, load_generator, generate


def small(seed=0, **kw):
    set_seed(seed)
    dls = gan_dataloaders('digits', size=16, bs=32, nz=16, max_items=256, **kw)
    return dls, Generator(16, 16, 1, nf=8), Critic(16, 1, nf=8)


class Frozen(Callback):
    def before_step(self):
        self.net = self.learn.critic if self.learn.gen_mode else self.learn.generator
        self.snap = [p.detach().clone() for p in self.net.parameters()]
    def after_step(self):
        self.count += 1
        for a, p in zip(self.snap, self.net.parameters()): assert torch.equal(a, p.detach())


@pytest.mark.parametrize('opt_func', [None, partial(Adam, mom=0.5, sqr_mom=0.999, wd=0.1)])
@pytest.mark.parametrize('n_crit', [1, 2])
def test_frozen_network_is_bit_identical(opt_func, n_crit):
    dls, G, D = small()
    learn = dcgan_learner(dls, G, D, n_crit=n_crit, opt_func=opt_func)
    cb = Frozen(); cb.count = 0
    with learn.no_bar(), learn.no_logging(): learn.fit(2, cbs=cb)
    n = len(dls.train)
    assert cb.count == 2 * (n + n // n_crit)     # every critic and generator step was checked


def test_nan_stops_and_keeps_checkpoint(tmp_path):
    dls, G, D = small()
    learn = dcgan_learner(dls, G, D, path=tmp_path)
    with learn.no_bar(), learn.no_logging(): learn.fit(1)
    before = (tmp_path/'checkpoint.pth').read_bytes()
    class Poison(Callback):
        def before_batch(self):
            if self.iter == 2: next(self.learn.generator.parameters()).data.fill_(float('inf'))
    with learn.no_bar(), learn.no_logging(), pytest.raises(NonFiniteLossError, match='loss became nan'):
        learn.fit(3, start_epoch=1, cbs=Poison())
    assert (tmp_path/'checkpoint.pth').read_bytes() == before
    assert len(list(tmp_path.glob('*.tmp'))) == 0


def test_resume_is_exact(tmp_path):
    dls, G, D = small(1)
    a = dcgan_learner(dls, G, D, path=tmp_path/'a')
    with a.no_bar(), a.no_logging(): a.fit(1)
    set_seed(9)
    with a.no_bar(), a.no_logging(): a.fit(2, start_epoch=1)
    dls2, G2, D2 = small(2)
    b = dcgan_learner(dls2, G2, D2, path=tmp_path/'b')
    # a's checkpoint after epoch 2 was overwritten; so compare: load a's epoch-2 checkpoint into b, then both train epoch 3
    assert b.load_checkpoint(tmp_path/'a'/'checkpoint.pth') == 2
    set_seed(3)
    with a.no_bar(), a.no_logging(): a.fit(3, start_epoch=2)
    set_seed(3)
    with b.no_bar(), b.no_logging(): b.fit(3, start_epoch=2)
    for p, q in zip(list(a.generator.parameters()) + list(a.critic.parameters()),
                    list(b.generator.parameters()) + list(b.critic.parameters())):
        assert torch.equal(p, q)


def test_load_generator_and_generate(tmp_path):
    dls, G, D = small()
    learn = dcgan_learner(dls, G, D, path=tmp_path)
    with learn.no_bar(), learn.no_logging(): learn.fit(1)
    g = load_generator(tmp_path)
    assert not g.training and g.nz == 16
    x = generate(g, 10, seed=0)
    assert x.shape == (10, 1, 16, 16) and torch.equal(x, generate(learn.generator, 10, seed=0))
    with pytest.raises(FileNotFoundError):
        load_generator(tmp_path/'nope.pth')


def test_training_moves_both_networks():
    dls, G, D = small()
    g0, d0 = copy.deepcopy(G), copy.deepcopy(D)
    learn = dcgan_learner(dls, G, D)
    with learn.no_bar(), learn.no_logging(): learn.fit(1)
    assert any(not torch.equal(p, q) for p, q in zip(g0.parameters(), G.parameters()))
    assert any(not torch.equal(p, q) for p, q in zip(d0.parameters(), D.parameters()))
