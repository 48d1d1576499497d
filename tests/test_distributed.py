"""Multi-process tests: two processes on the CPU with the gloo backend, started by torchrun as a user would start them.
Each launch is bounded in time; a hang fails the test instead of stalling CI."""
import os, shutil, subprocess, sys, time
from pathlib import Path
import pytest, torch

WORKER = r'''
import sys, shutil, warnings, torch
from pathlib import Path
from fastai.callback.core import Callback
from fastai.torch_core import set_seed
from dcgan_course.distributed import distributed, rank_world
from dcgan_course.layers import Generator, Critic
from dcgan_course.learner import DCGANLearner, NonFiniteLossError, replay_dls
from dcgan_course.recipe import RECIPES, recipe_dls, recipe_learner

mode, out = sys.argv[1], Path(sys.argv[2])

class Frozen(Callback):
    "Count the batches where the network not being trained moved (the generator on critic-only batches)."
    def before_fit(self): self.moved = 0
    def before_batch(self): self.g0 = [p.detach().clone() for p in self.learn.generator.parameters()]
    def after_batch(self):
        if not self.learn.do_gen:
            self.moved += any(not torch.equal(a, p) for a, p in zip(self.g0, self.learn.generator.parameters()))

class Poison(Callback):
    "Make process 1's generator loss NaN at the last batch of a NaN-check window; process 0's losses stay finite."
    order = 0
    def after_loss(self):
        if rank_world()[0] == 1 and self.epoch == 0 and self.iter == 3 and self.learn.gen_mode:
            self.learn.loss_grad = self.learn.loss_grad * float('nan')

with distributed('cpu'):
    rank, world = rank_world()
    if mode == 'train':     # a recipe with batchnorm, hacks, EMA and a generator step on every other batch
        r = RECIPES['digits'].replace(size=16, nf=8, nz=16, bs=16, max_items=256, epochs=2, n_crit=2, flip_labels=0.05,
                                      instance_noise=0.1, label_smoothing=(0.9, 0.9), ema=0.9, monitor=True, seed=3)
        dls = recipe_dls(r, device='cpu')
        seen, noise, make = [], [], dls.train.create_batch
        def record(idxs):
            b = make(idxs)
            seen.append(list(idxs)); noise.append(b[0])
            return b
        dls.train.create_batch = record
        frozen = Frozen()
        learn = recipe_learner(r, dls, path=out/'run', cbs=[frozen])
        learn.fit(r.epochs)
        torch.save(dict(params=[p.detach() for p in learn.model.parameters()],
                        ema=[p for p in learn.ema_generator.parameters()],
                        buffers=[b for b in learn.model.buffers()], seen=seen, noise=noise, moved=frozen.moved),
                   out/f'rank{rank}.pt')
    elif mode == 'replay':  # no batchnorm: two halves of each batch, averaged, are the whole batch
        d = torch.load(out/'batches.pt')
        torch.manual_seed(0)
        G, D = Generator(16, nz=8, nc=1, nf=8, bn=False), Critic(16, nc=1, nf=8, bn=False)
        n = len(d['batches'][0][0]) // world
        mine = [(z[rank * n:(rank + 1) * n], x[rank * n:(rank + 1) * n]) for z, x in d['batches']]
        learn = DCGANLearner(replay_dls(mine), G, D, cbs=[]).to_distributed()
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')      # "cannot be sharded": each process was given its half on purpose
            learn.fit(1)
        torch.save([p.detach() for p in learn.model.parameters()], out/f'replay{rank}.pt')
    elif mode == 'resume':  # n_crit 2, 7 batches per process and epoch; epoch 2 in one learner, or resumed
        r = RECIPES['digits'].replace(size=16, nf=8, nz=16, bs=16, max_items=224, n_crit=2, ema=0.999, monitor=False,
                                      seed=3)
        learn = recipe_learner(r, recipe_dls(r, device='cpu'), path=out/'resumed', resume=sys.argv[3] == 'resume')
        if sys.argv[3] == 'resume': learn.load_checkpoint(out/'epoch1.pth')
        else:
            learn.fit(1)
            if rank == 0: shutil.copy(out/'resumed'/'checkpoint.pth', out/'epoch1.pth')
        learn.fit(2, start_epoch=1)
        torch.save(dict(batches=learn.n_iter, iters_before=learn.iters_before, ema_updates=learn.ema_updates),
                   out/f'{sys.argv[3]}{rank}.pt')
    elif mode == 'nan':
        r = RECIPES['digits'].replace(size=16, nf=8, nz=16, bs=16, max_items=512, monitor=False)
        dls = recipe_dls(r, device='cpu')
        set_seed(0)
        learn = recipe_learner(r, dls, path=out/'nanrun', cbs=[Poison()], check_every=4)
        try: learn.fit(2)
        except NonFiniteLossError as e:
            print(f'rank {rank}: {e}', flush=True)
            torch.distributed.barrier()       # both got here on their own: torchrun would stop the other once one exits
            sys.exit(3)
'''


def torchrun(tmp_path, *args, n=2, timeout=300):
    (tmp_path/'worker.py').write_text(WORKER)
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONWARNINGS': 'ignore'}
    t0 = time.time()
    r = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc-per-node', str(n),
                        str(tmp_path/'worker.py'), *args], capture_output=True, text=True, timeout=timeout, env=env)
    return r, time.time() - t0


def test_two_processes_train_one_gan(tmp_path):
    r, _ = torchrun(tmp_path, 'train', str(tmp_path))
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    a, b = (torch.load(tmp_path/f'rank{i}.pt', weights_only=False) for i in (0, 1))
    # the same networks everywhere: weights, the EMA generator, and batchnorm's running statistics (averaged each epoch)
    for k in ('params', 'ema', 'buffers'):
        assert all(torch.equal(x, y) for x, y in zip(a[k], b[k])), k
    assert a['moved'] == b['moved'] == 0             # G stayed bit-identical on critic-only batches, in both
    # disjoint shards that together are each epoch (256 images, batches of 16: 8 per process and epoch)
    assert len(a['seen']) == len(b['seen']) == 16
    for e in range(2):
        sa = [i for batch in a['seen'][e * 8:(e + 1) * 8] for i in batch]
        sb = [i for batch in b['seen'][e * 8:(e + 1) * 8] for i in batch]
        assert not set(sa) & set(sb) and sorted(sa + sb) == list(range(256))
    assert a['seen'][:8] != a['seen'][8:]             # a new split every epoch
    assert not any(torch.equal(x, y) for x, y in zip(a['noise'], b['noise']))   # each process draws its own noise
    # one set of files, written by process 0, recording two processes
    run = tmp_path/'run'
    assert sorted(p.name for p in run.iterdir()) == ['checkpoint.pth', 'generator.json', 'generator.safetensors',
                                                     'metrics.csv', 'recipe.json', 'samples', 'samples.png']
    assert len(list((run/'samples').iterdir())) == 2
    from dcgan_course.train import read_metrics
    assert [(m['world_size'], m['global_bs']) for m in read_metrics(run/'metrics.csv')] == [(2, 32), (2, 32)]
    # and it resumes in one process
    res = subprocess.run(['dcgan_train', '--out', str(run), '--resume', '--epochs', '3'], capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert [(m['epoch'], m['world_size'], m['global_bs']) for m in read_metrics(run/'metrics.csv')][-1] == (3, 1, 16)
    # and back to two processes
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    launch = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc-per-node', '2']
    res = subprocess.run([*launch, shutil.which('dcgan_train'), '--out', str(run), '--resume', '--epochs', '4'],
                         capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.count('resuming') == 1           # process 0 speaks for both
    assert ([(m['epoch'], m['world_size'], m['global_bs']) for m in read_metrics(run/'metrics.csv')]
            == [(1, 2, 32), (2, 2, 32), (3, 1, 16), (4, 2, 32)])


def test_epoch_2_keeps_the_generators_turn_in_each_process(tmp_path):
    "With n_crit 2, epoch 2 counts the 7 batches each process read in epoch 1: a learner going on, or one resumed."
    # The generator trains on every other batch of the run. Each process reads 7 of the 14 batches of an epoch, so after
    # epoch 1 the turn is mid-way. Epoch 2 must count the 7 batches each process read before, not the 14 of the whole
    # loader (what `len(dls.train)` says between fits).
    for how in ('continue', 'resume'):
        r, _ = torchrun(tmp_path, 'resume', str(tmp_path), how)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
        for i in (0, 1):
            d = torch.load(tmp_path/f'{how}{i}.pt')
            assert (d['batches'], d['iters_before']) == (7, 7), (how, d)
            assert d['ema_updates'] == 2 * 7 // 2, (how, d)      # 7 G steps in 14 batches, as if it never stopped


def test_two_halves_match_one_process_with_the_whole_batch(tmp_path):
    from dcgan_course.layers import Generator, Critic
    from dcgan_course.learner import DCGANLearner, replay_dls
    g = torch.Generator().manual_seed(1)
    batches = [(torch.randn(64, 8, 1, 1, generator=g), torch.rand(64, 1, 16, 16, generator=g) * 2 - 1)
               for _ in range(4)]
    torch.save({'batches': batches}, tmp_path/'batches.pt')
    r, _ = torchrun(tmp_path, 'replay', str(tmp_path))
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    torch.manual_seed(0)
    G, D = Generator(16, nz=8, nc=1, nf=8, bn=False), Critic(16, nc=1, nf=8, bn=False)
    start = [p.detach().clone() for p in list(G.parameters()) + list(D.parameters())]
    learn = DCGANLearner(replay_dls(batches), G, D, cbs=[])
    learn.no_bar()
    learn.fit(1)
    one = [p.detach() for p in learn.model.parameters()]
    two = [torch.load(tmp_path/f'replay{i}.pt') for i in (0, 1)]
    assert all(torch.equal(x, y) for x, y in zip(*two))
    # Averaging two half-batch gradients is the whole batch's gradient up to float rounding (about 1e-7 relative).
    # Adam's normalized steps of lr = 2e-4 can turn that into at most a small fraction of one step. After 4 steps the
    # weights agree to 2e-5 (a tenth of one step), while each moved by about 8e-4 (4 steps) from where it started.
    diff = max((x - y).abs().max().item() for x, y in zip(one, two[0]))
    moved = max((x - s).abs().max().item() for x, s in zip(one, start))
    assert diff < 2e-5 and moved > 5e-4, (diff, moved)


def test_nan_in_one_process_stops_both(tmp_path):
    r, secs = torchrun(tmp_path, 'nan', str(tmp_path))
    out = r.stdout + r.stderr
    assert 'rank 1: The generator loss became nan at epoch 0, batch 3' in out, out[-3000:]
    assert 'rank 0: A loss became non-finite in another process' in out, out[-3000:]
    assert r.returncode != 0
    assert secs < 120, secs                        # both ended at the check, neither waited for the other
    assert not (tmp_path/'nanrun'/'checkpoint.pth').exists()   # no checkpoint from the poisoned epoch
