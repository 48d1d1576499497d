"The learner's guarantees: frozen networks stay bit-identical, NaN stops training without losing the checkpoint, resume is exact."
import copy, shutil
import pytest, torch
from fastai.callback.core import Callback
from fastai.optimizer import Adam
from fastai.torch_core import set_seed
from functools import partial
from dcgan_course.data import gan_dataloaders
from dcgan_course.layers import Generator, Critic
from dcgan_course.learner import NonFiniteLossError
from dcgan_course.train import dcgan_learner, Checkpoint
from dcgan_course.hacks import LRDecay, DiffAugment, GeneratorEMA


def small(seed=0, max_items=256, **kw):
    set_seed(seed)
    dls = gan_dataloaders('digits', size=16, bs=32, nz=16, max_items=max_items, **kw)
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




class _KeepCheckpoint(Callback):
    "Copy the run's checkpoint as it is after epoch `n` (the `Checkpoint` callback overwrites it every epoch)."
    order = Checkpoint.order + 1
    def __init__(self, n, dest): self.n, self.dest = n, dest
    def after_epoch(self):
        if self.epoch + 1 == self.n: shutil.copy(self.learn.path/'checkpoint.pth', self.dest)


def test_resume_mid_schedule_is_exact(tmp_path):
    """A run of 2 epochs stopped after the first and resumed ends where the run that went on ends, bit for bit: `LRDecay`'s rates
    continue from the middle of their schedule and `DiffAugment`'s random shifts and holes from the saved random state."""
    def learner(seed, name, *cbs):
        dls, G, D = small(seed)
        return dcgan_learner(dls, G, D, lr=[1e-3, 4e-4], path=tmp_path/name, cbs=[LRDecay(), DiffAugment('translation,cutout'), *cbs])
    a = learner(1, 'a', _KeepCheckpoint(1, tmp_path/'epoch1.pth'))
    with a.no_bar(), a.no_logging(): a.fit(2)
    b = learner(2, 'b')
    assert b.load_checkpoint(tmp_path/'epoch1.pth') == 1
    with b.no_bar(), b.no_logging(): b.fit(2, start_epoch=1)
    assert [h['lr'] for h in b.opt.hypers] == [h['lr'] for h in a.opt.hypers] and a.opt.hypers[0]['lr'] < 1e-4   # decayed, alike
    for p, q in zip(list(a.generator.parameters()) + list(a.critic.parameters()),
                    list(b.generator.parameters()) + list(b.critic.parameters())):
        assert torch.equal(p, q)


def test_resume_with_n_crit_2_and_an_odd_epoch_is_exact(tmp_path):
    """Two critic steps per generator step and 7 batches an epoch: the generator's turn runs across epochs (batches 2, 4, ..., 14, 16
    of the run), so a resume after epoch 1 must keep that turn, and the moving average's warm-up must go on from its saved count."""
    def learner(seed, name, *cbs):
        dls, G, D = small(seed, max_items=224)      # 7 batches of 32
        assert len(dls.train) % 2 == 1
        return dcgan_learner(dls, G, D, n_crit=2, path=tmp_path/name, cbs=[GeneratorEMA(0.999), *cbs])
    a = learner(1, 'a', _KeepCheckpoint(1, tmp_path/'epoch1.pth'))
    with a.no_bar(), a.no_logging(): a.fit(3)
    assert a.ema_updates == 3 * 7 // 2                      # 10 generator steps in 21 batches
    b = learner(2, 'b')
    assert b.load_checkpoint(tmp_path/'epoch1.pth') == 1 and b.ema_updates == 3
    with b.no_bar(), b.no_logging(): b.fit(3, start_epoch=1)
    assert b.ema_updates == a.ema_updates
    for p, q in zip(list(a.generator.parameters()) + list(a.critic.parameters()) + list(a.ema_generator.parameters()),
                    list(b.generator.parameters()) + list(b.critic.parameters()) + list(b.ema_generator.parameters())):
        assert torch.equal(p, q)


# --- resume onto another device (issue 15.1) ---------------------------------------------------------------------------------------
from fastai.learner import Learner
from fastai.optimizer import Optimizer
from fastai.vision.gan import GANLearner


def _state_tensors(opt):
    "(param, key, tensor) for every tensor in the optimizer's real state (PyTorch's inside fastai's OptimWrapper)."
    st = opt.state if isinstance(opt, Optimizer) else opt.opt.state
    return [(p, k, v) for p, s in st.items() for k, v in s.items() if isinstance(v, torch.Tensor)]


@pytest.mark.filterwarnings('ignore:.*meta parameter')     # copying weights into `meta` tensors is a no-op, and torch says so
@pytest.mark.parametrize('opt_func', [None, partial(Adam, mom=0.5, sqr_mom=0.999, eps=1e-8)], ids=['torch-adam', 'fastai-adam'])
def test_checkpoint_loads_onto_the_learners_device(tmp_path, opt_func):
    "Saved on the CPU, loaded by a learner whose data (and so networks) are on another device: `meta` stands in for CUDA."
    dls, G, D = small()
    a = dcgan_learner(dls, G, D, path=tmp_path, opt_func=opt_func, cbs=[GeneratorEMA(0.9)])
    with a.no_bar(), a.no_logging(): a.fit(1)
    ck = torch.load(tmp_path/'checkpoint.pth', weights_only=False)
    assert ('cuda' in ck['rng']) == torch.cuda.is_available()        # CUDA's random state is saved where there is one
    dls2, G2, D2 = small(1)
    dls2.device = torch.device('meta')
    b = dcgan_learner(dls2, G2, D2, opt_func=opt_func, cbs=[GeneratorEMA(0.9)])
    assert b.load_checkpoint(tmp_path/'checkpoint.pth') == 1
    assert {p.device.type for p in b.model.parameters()} == {'meta'}
    assert {p.device.type for p in b.ema_generator.parameters()} == {'meta'}
    st = _state_tensors(b.opt)
    assert len(st) >= 2 * len(list(b.model.parameters()))            # both moments of every parameter came back
    for p, k, v in st:
        if k == 'step' and not isinstance(b.opt, Optimizer): assert v.device.type == 'cpu' and v.ndim == 0   # PyTorch keeps it there
        else: assert v.device == p.device, (k, v.device, p.device)


@pytest.mark.filterwarnings('ignore:.*meta parameter')
def test_checkpoint_loads_into_networks_already_moved(tmp_path):
    "The networks moved by hand (the data's device unknown): the optimizer's state follows each parameter's device."
    dls, G, D = small()
    a = dcgan_learner(dls, G, D, path=tmp_path, opt_func=partial(Adam, mom=0.5, sqr_mom=0.999, eps=1e-8))
    with a.no_bar(), a.no_logging(): a.fit(1)
    dls2, G2, D2 = small(1)
    dls2.device = None      # the data's device unknown (gan_dataloaders picks one; a user's loaders may not)
    b = dcgan_learner(dls2, G2.to('meta'), D2.to('meta'), opt_func=partial(Adam, mom=0.5, sqr_mom=0.999, eps=1e-8))
    b.load_checkpoint(tmp_path/'checkpoint.pth')
    st = _state_tensors(b.opt)
    assert st and all(v.device.type == 'meta' for _, _, v in st)


# --- metrics.csv when a resumed run changes its columns (issue 15.4) ---------------------------------------------------------------

# --- what the learner is (issue 15.5) -------------------------------------------------------------------------------------------
def test_learner_is_a_plain_fastai_learner():
    dls, G, D = small()
    learn = dcgan_learner(dls, G, D)
    assert isinstance(learn, Learner) and not isinstance(learn, GANLearner)
    assert learn.generator is G and learn.critic is D


# --- claims (issue 15.6) -----------------------------------------------------------------------------------------------------------
def test_equals_the_plain_pytorch_loop_bit_for_bit():
    "Same weights, same replayed batches: after 12 update pairs BOTH networks equal the plain loop's exactly (tolerance 0, CPU)."
    from dcgan_course.learner import DCGANLearner, plain_dcgan_steps, replay_dls
    dls, G, D = small()
    batches = [tuple(t.as_subclass(torch.Tensor) for t in dls.one_batch()) for _ in range(12)]
    Gp, Dp = copy.deepcopy(G), copy.deepcopy(D)
    plain_dcgan_steps(Gp, Dp, batches)
    learn = DCGANLearner(replay_dls(batches), G, D)
    with learn.no_bar(), learn.no_logging(): learn.fit(1)
    for net_a, net_b in ((Gp, G), (Dp, D)):
        ps = list(zip(net_a.parameters(), net_b.parameters()))
        assert ps and all(torch.equal(a, b) for a, b in ps)
        assert all(torch.equal(a, b) for a, b in zip(net_a.buffers(), net_b.buffers()))   # batchnorm statistics too


def test_stock_fastai_callbacks_and_methods_compose(tmp_path):
    from fastai.callback.tracker import SaveModelCallback
    from fastai.callback.progress import CSVLogger
    from fastai.callback.schedule import fit_one_cycle, lr_find   # noqa: F401 (patches Learner)
    dls, G, D = small()
    learn = dcgan_learner(dls, G, D, path=tmp_path)
    with learn.no_bar():
        learn.fit(2, cbs=[CSVLogger(), SaveModelCallback(monitor='gen_loss', every_epoch=True)])
    hist = (tmp_path/'history.csv').read_text().splitlines()
    assert hist[0].split(',')[:3] == ['epoch', 'train_loss', 'gen_loss'] and len(hist) == 3
    assert (tmp_path/'models'/'model_0.pth').exists() and (tmp_path/'models'/'model_1.pth').exists()
    with learn.no_bar(), learn.no_logging(): learn.fit(2, cbs=[SaveModelCallback(monitor='crit_loss', fname='best')])
    best = torch.load(tmp_path/'models'/'best.pth', weights_only=False)
    sd = best['model'] if 'model' in best else best
    assert all(torch.equal(v, learn.model.state_dict()[k]) for k, v in sd.items())   # it reloaded the best at the end
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(2, 1e-3, moms=(0.5, 0.5, 0.5))
    lrs = learn.recorder.lrs
    top = max(lrs)
    assert abs(top - 1e-3) < 1e-4 and lrs[0] < top / 10 and lrs[-1] < top / 10 and lrs.index(top) not in (0, len(lrs) - 1)
    assert learn.opt.hypers[0]['mom'] == 0.5                          # DCGAN's beta1 kept
    before = [p.detach().clone() for p in learn.model.parameters()]
    with learn.no_bar(): sug = learn.lr_find(num_it=20, show_plot=False)
    assert sug.valley > 0 and len(learn.recorder.lrs) >= 10 and learn.recorder.lrs[-1] > learn.recorder.lrs[0]
    assert all(torch.equal(a, b) for a, b in zip(before, learn.model.parameters()))   # lr_find restores the weights


# --- the interface the distributed trainer relies on (issue 10.1) -----------------------------------------------------------------
def test_phase_events_order_and_trained_params():
    class Order(Callback):
        def before_fit(self): self.log = []
        def after_loss(self):
            l = self.learn
            assert torch.equal(l.loss, l.loss_grad.detach()) and not l.loss.requires_grad
            assert (l.gen_loss if l.gen_mode else l.crit_loss) is not None
            assert l.d_real is not None and l.d_real.device == l.real.device
            self.log.append(('loss', l.gen_mode))
        def after_backward(self):
            l = self.learn
            mine = {id(p) for p in l.trained_params()}
            assert all(p.grad is not None for p in l.trained_params())
            assert all(p.grad is None for p in l.model.parameters() if id(p) not in mine)
            assert l.trained_params() == list((l.generator if l.gen_mode else l.critic).parameters())
            self.log.append(('backward', l.gen_mode))
        def after_step(self): self.log.append(('step', self.learn.gen_mode))
        def before_batch(self):
            assert type(self.learn.real) is torch.Tensor and type(self.learn.z) is torch.Tensor   # no fastai subclass in the step
    dls, G, D = small()
    learn = dcgan_learner(dls, G, D)
    cb = Order()
    with learn.no_bar(), learn.no_logging(): learn.fit(1, cbs=cb)
    one = [('loss', False), ('backward', False), ('step', False), ('loss', True), ('backward', True), ('step', True)]
    assert cb.log == one * len(dls.train)


def test_nan_is_caught_within_the_check_stride(tmp_path):
    "With a check every 4 batches, a NaN at batch 5 stops the fit at batch 7 at the latest, naming batch 5, and no sample is written."
    dls, G, D = small()
    class Poison(Callback):
        def before_batch(self):
            if self.iter == 5: next(self.learn.critic.parameters()).data[0] = float('nan')
        def after_batch(self): self.seen = self.iter
    learn = dcgan_learner(dls, G, D, path=tmp_path, check_every=4)
    p = Poison()
    with learn.no_bar(), learn.no_logging(), pytest.raises(NonFiniteLossError, match='critic loss became nan at epoch 0, batch 5'):
        learn.fit(1, cbs=p)
    assert p.seen < 7 and not (tmp_path/'checkpoint.pth').exists() and not (tmp_path/'samples.png').exists()
    with pytest.raises(ValueError, match='check_every'): dcgan_learner(dls, G, D, check_every=0)


# --- compiled step and bf16 (issue 10.2, on the CPU with inductor) -----------------------------------------------------------------
def test_compiled_step_matches_eager():
    "One update pair from the same weights on the same batch: compiled equals eager (fp32); weights and state_dict keys unchanged."
    from dcgan_course.learner import DCGANLearner, replay_dls
    dls, G, D = small()
    one = [tuple(t.as_subclass(torch.Tensor) for t in dls.one_batch())]
    Ge, De = copy.deepcopy(G), copy.deepcopy(D)
    g0 = [p.detach().clone() for p in G.parameters()]
    e = DCGANLearner(replay_dls(one), Ge, De)
    with e.no_bar(), e.no_logging(): e.fit(1)
    c = DCGANLearner(replay_dls(one), G, D, compile=True)
    with c.no_bar(), c.no_logging(): c.fit(1)
    assert G._compiled_call_impl is not None and D._compiled_call_impl is not None
    assert list(G.state_dict()) == list(Ge.state_dict())               # no '_orig_mod.' prefixes: checkpoints unchanged
    assert any(not torch.equal(a, b) for a, b in zip(g0, G.parameters()))
    d = torch.cat([(a - b).abs().flatten() for a, b in zip(list(Ge.parameters()) + list(De.parameters()),
                                                          list(G.parameters()) + list(D.parameters()))])
    # Adam's first step is lr * g / (|g| + eps): +-lr wherever a gradient is far from 0, but where one is near eps, float
    # noise in the gradient (1e-7: another kernel's order of summation) moves that parameter by a visible part of lr.
    # So nearly every parameter must agree to 1e-6, and none may differ by a tenth of a step.
    lr = e.opt.hypers[0]['lr'] if hasattr(e.opt, 'hypers') else e.opt.param_groups[0]['lr']
    assert (d <= 1e-6).float().mean() >= 0.999 and d.max() <= 0.1 * lr, (d.max().item(), (d > 1e-6).sum().item())

    class Hooks(Callback): needs_eager = True
    with c.no_bar(), c.no_logging(), pytest.warns(UserWarning, match='Hooks need the eager networks'):
        c.fit(1, cbs=Hooks())
    assert G._compiled_call_impl is None                               # it really trained eagerly


def test_bf16_autocast():
    dls, G, D = small()
    class Dtypes(Callback):
        def before_fit(self): self.seen = set()
        def after_loss(self):
            pred = self.learn.gen_pred if self.learn.gen_mode else self.learn.real_pred
            self.seen.add((pred.dtype, self.learn.loss_grad.dtype))
    learn, cb = dcgan_learner(dls, G, D, bf16=True), Dtypes()
    g0 = [p.detach().clone() for p in G.parameters()]
    with learn.no_bar(), learn.no_logging(): learn.fit(1, cbs=cb)
    assert cb.seen == {(torch.bfloat16, torch.float32)}                 # bf16 networks, fp32 losses
    assert all(p.dtype == torch.float32 for p in G.parameters())        # fp32 master weights
    assert any(not torch.equal(a, b) for a, b in zip(g0, G.parameters()))


def test_progress_bar_reads_the_loss_only_on_check_batches():
    from fastai.callback.progress import ProgressCallback
    dls, G, D = small()
    learn = dcgan_learner(dls, G, D, check_every=3)
    reads = []
    class Probe(Callback):
        order = 61                                   # after the progress bar (60)
        def after_batch(self): reads.append(self.learn.progress.pbar.comment)
    with learn.no_logging(): learn.fit(1, cbs=Probe())
    from dcgan_course.speed import CheckProgress
    assert isinstance(learn.progress, ProgressCallback) and type(learn.progress) is CheckProgress
    n = len(dls.train)
    changed = [i for i in range(n) if reads[i] != (reads[i - 1] if i else '')]
    assert changed == [i for i in range(n) if (i + 1) % 3 == 0 or i == n - 1]


def test_samples_draw_z_from_the_distribution_the_generator_trained_on():
    "`generate` (the judge, FID, the explorer) must draw a uniform-z generator's noise from U(-1, 1), its EMA copy's too."
    from dcgan_course.core import new_noise
    from dcgan_course.learner import generate
    dls, g, c = small(noise='uniform')
    learn = dcgan_learner(dls, g, c, cbs=[GeneratorEMA(0.9)])
    assert learn.sample_generator is learn.ema_generator
    z = new_noise(8, 16, 'uniform', torch.Generator().manual_seed(3))
    for net in (learn.generator, learn.ema_generator):
        assert torch.equal(generate(net, 8, seed=3), generate(net, z=z))


def test_the_speed_pieces_change_nothing_but_speed():
    "The learner's own dispatch, smoothed loss and check stride give the weights that fastai's plain machinery gives."
    from fastai.learner import Learner, AvgSmoothLoss
    from dcgan_course.learner import DCGANLearner
    from dcgan_course.speed import DeviceSmoothLoss, PhaseStat

    class FastaiDispatch(DCGANLearner):
        __call__ = Learner.__call__

    def run(cls, **kw):
        dls, G, D = small()
        learn = cls(dls, G, D, **kw)
        if cls is FastaiDispatch: learn.recorder.smooth_loss = AvgSmoothLoss()
        with learn.no_bar(), learn.no_logging(): learn.fit(1)
        return learn, [p.detach() for p in list(G.parameters()) + list(D.parameters())]

    fast, a = run(DCGANLearner)
    slow, b = run(FastaiDispatch, check_every=1)
    assert all(torch.equal(p, q) for p, q in zip(a, b))
    assert isinstance(fast.recorder.smooth_loss, DeviceSmoothLoss)
    assert [type(m) for m in fast.recorder._train_mets[1:5]] == [PhaseStat] * 4
    row = lambda l: [float(v) for v in l.recorder.values[-1]]       # train_loss, gen_loss, crit_loss, d_real, d_fake
    assert row(fast) == pytest.approx(row(slow), rel=1e-6)
    assert fast.ema_generator is None and fast.sample_generator is fast.generator
