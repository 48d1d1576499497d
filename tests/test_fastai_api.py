"fastai's own Learner methods on a DCGANLearner: each does what it means for a GAN, or refuses in one line naming the alternative."
import random, warnings
import numpy as np
import pytest, torch
import matplotlib.pyplot as plt
from fastai.callback.core import Callback
from fastai.callback.fp16 import MixedPrecision
from fastai.callback.progress import CSVLogger
from fastai.callback.schedule import *   # fit_one_cycle
from fastai.callback.tracker import SaveModelCallback
from dcgan_course.learner import generate
from dcgan_course.recipe import RECIPES, recipe_learner
from dcgan_course.core import image_grid

TINY = dict(size=16, nf=8, nz=8, bs=32, max_items=256)    # 8 batches an epoch


def tiny(path=None, **kw):
    "The digits recipe's learner (EMA generator and all its callbacks), tiny, on the CPU."
    return recipe_learner(RECIPES['digits'].replace(**TINY, **kw), path=path, device='cpu')


def fit(learn, n=1, **kw):
    with learn.no_bar(), learn.no_logging(): learn.fit(n, **kw)


def state(*nets): return [t.detach().clone() for m in nets for t in list(m.parameters()) + list(m.buffers())]
def same(a, b): return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))
def n_params(net): return sum(p.numel() for p in net.parameters())


def test_summary_tables_both_networks_and_changes_nothing():
    learn = tiny()
    before, rngs = state(learn.generator, learn.critic, learn.ema_generator), (torch.get_rng_state(), random.getstate())
    s = learn.summary()
    assert isinstance(s, str)
    assert s.index('Generator (input: noise, 32 x 8 x 1 x 1)') < s.index('Critic (input: images, 32 x 1 x 16 x 16)')
    assert '32 x 1 x 16 x 16' in s[:s.index('Critic (input')]           # the generator's last output shape, at batch size
    for net in (learn.generator, learn.critic): assert f'Total params: {n_params(net):,}' in s
    assert 'the critic on every batch, the generator once on every batch' in s
    assert 'Samples from: the EMA copy' in s and 'Precision: float32' in s and 'dcgan_adam(mom=0.5' in s
    assert all(f'  - {type(cb).__name__}' in s for cb in learn.cbs)
    assert same(before, state(learn.generator, learn.critic, learn.ema_generator))    # batchnorm statistics too
    assert torch.equal(rngs[0], torch.get_rng_state()) and rngs[1] == random.getstate()   # a seeded run is not disturbed
    assert learn.generator.training and learn.critic.training


def test_summary_of_a_conditional_learner():
    learn = tiny(conditional=True)
    s = learn.summary()
    assert 'Generator (input: noise and conditions' in s and 'Embedding' in s
    assert f'Total params: {n_params(learn.critic):,}' in s


def test_export_refuses_and_names_the_safe_files(tmp_path):
    learn = tiny(); learn.path = tmp_path
    with pytest.raises(NotImplementedError, match=r"runs code when it is loaded.*learn\.save_generator\('generator\.safetensors'\) "
                                                  r"and load_generator.*learn\.save_checkpoint and load_checkpoint"):
        learn.export()
    assert list(tmp_path.iterdir()) == []


def test_get_preds_samples_the_ema_generator():
    learn = tiny(); fit(learn)          # the EMA copy now differs from the trained generator
    imgs, targs = learn.get_preds(seed=0)
    assert imgs.shape == (32, 1, 16, 16) and targs is None and imgs.device.type == 'cpu'
    assert imgs.min() >= -1 and imgs.max() <= 1 and imgs.std() > 0
    z, again, _ = learn.get_preds(seed=0, with_input=True)
    assert z.shape == (32, 8, 1, 1) and torch.equal(again, imgs)
    assert torch.equal(imgs, generate(learn.ema_generator, z=z))
    assert not torch.equal(imgs, generate(learn.generator, z=z))
    assert learn.get_preds(5)[0].shape == (5, 1, 16, 16)
    with pytest.raises(TypeError, match='not from a data set.*not dl'): learn.get_preds(dl=learn.dls.train)


def test_get_preds_of_a_conditional_learner_returns_the_classes():
    learn = tiny(conditional=True)
    imgs, labels = learn.get_preds(20, seed=0)
    assert imgs.shape == (20, 1, 16, 16) and torch.equal(labels, torch.arange(20) % 10)


def test_show_results_draws_the_samples():
    learn = tiny()
    ax = learn.show_results(max_n=9, seed=0)
    assert ax.get_title() == '9 samples from the EMA generator'
    grid = image_grid(learn.get_preds(9, seed=0)[0]).permute(1, 2, 0)
    assert torch.equal(torch.as_tensor(np.asarray(ax.images[0].get_array())), grid)
    with pytest.raises(TypeError, match='not ds_idx'): learn.show_results(ds_idx=0)
    plt.close('all')


class Precision(Callback):
    def before_critic(self): self.seen = (self.learn.crit_fake.dtype, self.learn._autocast().device)


def test_to_bf16_is_the_learners_own_autocast_on_the_cpu():
    learn = tiny()
    assert learn.to_bf16() is learn and learn.bf16 is True
    assert not any(isinstance(cb, MixedPrecision) for cb in learn.cbs)
    cb = Precision()
    with warnings.catch_warnings(record=True) as ws:
        warnings.simplefilter('always'); fit(learn, cbs=cb)
    assert cb.seen == (torch.bfloat16, 'cpu')
    assert [str(w.message) for w in ws if 'CUDA' in str(w.message)] == []
    learn.to_fp32()
    assert learn.bf16 is False


def test_to_fp16_refuses_and_names_to_bf16():
    learn = tiny()
    with pytest.raises(NotImplementedError, match=r'use learn\.to_bf16\(\)'): learn.to_fp16()
    assert learn.bf16 is False and not any(isinstance(cb, MixedPrecision) for cb in learn.cbs)


def test_lr_find_leaves_the_run_as_it_was(tmp_path):
    run = tmp_path/'run'
    learn = tiny(path=run); fit(learn)
    files = lambda: {p.relative_to(run): p.read_bytes() for p in run.rglob('*') if p.is_file()}
    before, nets, ema, n_ema = files(), state(learn.generator, learn.critic), state(learn.ema_generator), learn.ema_updates
    with learn.no_bar(): sug = learn.lr_find(num_it=20, show_plot=False)     # three mock epochs
    assert sug.valley > 0 and len(learn.recorder.lrs) > 8
    assert files() == before                   # no checkpoint, grid or metrics row from the mock epochs
    assert same(nets, state(learn.generator, learn.critic))
    assert same(ema, state(learn.ema_generator)) and learn.ema_updates == n_ema


# fastai's methods that already worked, and must go on working


def test_fit():
    learn = tiny(); before = state(learn.generator, learn.critic)
    fit(learn, 2)
    assert len(learn.recorder.values) == 2 and not same(before, state(learn.generator, learn.critic))


def test_fit_one_cycle():
    learn = tiny()
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(2, 1e-3, moms=(0.5, 0.5, 0.5))
    lrs = learn.recorder.lrs
    assert len(lrs) == 16 and lrs[0] < max(lrs) and lrs[-1] < max(lrs) and abs(max(lrs) - 1e-3) < 1e-4
    assert learn.opt.hypers[0]['mom'] == 0.5


def test_save_and_load(tmp_path):
    learn = tiny(); learn.path = tmp_path
    fit(learn); learn.save('m'); saved = state(learn.generator, learn.critic)
    fit(learn, 2, start_epoch=1)
    assert not same(saved, state(learn.generator, learn.critic))
    learn.load('m')
    assert same(saved, state(learn.generator, learn.critic))
    assert set(torch.load(tmp_path/'models'/'m.pth', weights_only=True)) == {'model', 'opt'}


def test_csv_logger(tmp_path):
    learn = tiny(); learn.path = tmp_path
    fit(learn, 2, cbs=CSVLogger())
    lines = (tmp_path/'history.csv').read_text().splitlines()
    assert lines[0].startswith('epoch,train_loss,gen_loss,crit_loss') and len(lines) == 3
    assert float(lines[2].split(',')[2]) == pytest.approx(float(learn.recorder.values[1][1]))


def test_save_model_callback(tmp_path):
    learn = tiny(); learn.path = tmp_path
    fit(learn, 2, cbs=SaveModelCallback(monitor='gen_loss', every_epoch=True))
    assert sorted(p.name for p in (tmp_path/'models').iterdir()) == ['model_0.pth', 'model_1.pth']
    last = torch.load(tmp_path/'models'/'model_1.pth', weights_only=True)     # the weights only (with_opt=False)
    assert all(torch.equal(last[k], v) for k, v in learn.model.state_dict().items())
