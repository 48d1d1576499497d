"""Time the dcgan_course learner against a plain PyTorch DCGAN loop (and fastai's stock GANLearner) in one run.

Every runner trains the same networks (copies of one initialisation) on the same replayed batches. The plain loop is PyTorch's
examples/dcgan step with two torch.optim.Adam optimizers (`plain_dcgan_steps`). Runs are interleaved and repeated; we report the
median seconds per update pair (one critic step + one generator step) and the ratios to the plain loop. Two settings:

- `large`: 32 px, batch 64, networks 64 wide (the course's default model). On a CPU the convolutions dominate. Target: <= 1.0x.
- `small`: 16 px, batch 16, networks 8 wide, one thread. The networks are so quick that what the training loop adds per step
  shows, as it does on a GPU. Besides the bare learner, it times the learner *as a user builds it*: `dcgan_learner` with a run
  folder (sample grids, metrics.csv and a checkpoint at each epoch's end) and the failure monitor on (`hack_callbacks()`).
  Target: <= 1.15x.

Results go to benchmarks/learner_results.json.

    python benchmarks/bench_learner.py                    # both settings
    python benchmarks/bench_learner.py --setting small --repeats 9
"""
import argparse, copy, json, os, platform, statistics, sys, tempfile, time, warnings
from functools import partial
from pathlib import Path

import torch

SETTINGS = dict(large=dict(size=32, bs=64, nf=64, steps=28, stock=True),     # 28 update pairs: one epoch of the digits at batch 64
                small=dict(size=16, bs=16, nf=8, steps=112, stock=False))    # 112 update pairs: one epoch of the digits at batch 16


def cpu_name():
    try:
        for line in open('/proc/cpuinfo'):
            if line.startswith('model name'): return line.split(':', 1)[1].strip()
    except OSError: pass
    return platform.processor() or platform.machine()


def load_avg():
    try: return os.getloadavg()[0]
    except OSError: return None


def replay_setup(size, bs, nf, steps, device='cpu'):
    "Seeded digits, fresh DCGAN networks and `steps` batches on `device`: what every timed runner starts from."
    from fastai.torch_core import set_seed
    from dcgan_course.data import gan_dataloaders
    from dcgan_course.layers import dcgan_nets
    dev = torch.device(device)
    set_seed(0)
    dls = gan_dataloaders('digits', size=size, bs=bs, nz=100)
    G0, D0 = dcgan_nets(dls, nf=nf)
    batches = [tuple(t.as_subclass(torch.Tensor).to(dev) for t in dls.one_batch()) for _ in range(steps)]
    sync = torch.cuda.synchronize if dev.type == 'cuda' else (lambda: None)
    return dev, dls, G0, D0, batches, sync


def bench(size, bs, nf, steps, repeats, device='cpu', stock=False, user=True):
    "Median seconds per update pair for each runner, timed interleaved."
    from dcgan_course.learner import DCGANLearner, plain_dcgan_steps, replay_dls, gen_loss_bce, crit_loss_bce
    from dcgan_course.train import dcgan_learner
    from dcgan_course.hacks import hack_callbacks
    from fastai.vision.gan import GANLearner
    from fastai.optimizer import Adam

    dev, dls, G0, D0, batches, sync = replay_setup(size, bs, nf, steps, device)
    tmp = Path(tempfile.mkdtemp())

    def nets(): return copy.deepcopy(G0).to(dev), copy.deepcopy(D0).to(dev)

    def run_plain():
        G, D = nets(); sync(); t = time.perf_counter()
        plain_dcgan_steps(G, D, batches); sync()
        return (time.perf_counter() - t) / steps

    def timed_fit(learn):
        sync(); t = time.perf_counter()
        with learn.no_bar(), learn.no_logging(), warnings.catch_warnings():
            warnings.simplefilter('ignore'); learn.fit(1)
        sync()
        return (time.perf_counter() - t) / steps

    def run_learner():
        G, D = nets()
        return timed_fit(DCGANLearner(replay_dls(batches), G, D))

    def run_user():
        G, D = nets()
        return timed_fit(dcgan_learner(replay_dls(batches), G, D, path=tmp/'run', cbs=hack_callbacks()))

    def run_stock():
        # fastai's GANLearner gives each batch to one network: 2 * steps batches make `steps` update pairs.
        G, D = nets()
        learn = GANLearner(replay_dls(batches + batches), G, D,
                           gen_loss_func=lambda fp, out, tgt: gen_loss_bce(fp.view(-1), torch.ones(len(fp), device=fp.device)),
                           crit_loss_func=lambda rp, fp: crit_loss_bce(rp.view(-1), fp.view(-1), torch.ones(len(rp), device=rp.device),
                                                                       torch.zeros(len(fp), device=fp.device)),
                           opt_func=partial(Adam, mom=0.5, sqr_mom=0.999, eps=1e-8, wd=0.), lr=2e-4, switch_eval=False)
        return timed_fit(learn)

    runners = {'plain PyTorch loop': run_plain, 'dcgan_course learner': run_learner}
    if user: runners['dcgan_course learner, run folder + monitor'] = run_user
    if stock: runners['fastai stock GANLearner'] = run_stock
    for f in runners.values(): f()   # warm-up (allocator, oneDNN kernels)
    times = {k: [] for k in runners}
    loads = []
    for r in range(repeats):
        loads.append(load_avg())
        for k, f in runners.items(): times[k].append(f())
    med = {k: statistics.median(v) for k, v in times.items()}
    base = med['plain PyTorch loop']
    return dict(setting=dict(size=size, bs=bs, nf=nf, steps=steps, repeats=repeats, device=str(dev)),
                seconds_per_update_pair={k: round(v, 6) for k, v in med.items()},
                all_runs={k: [round(x, 6) for x in v] for k, v in times.items()},
                ratio_to_plain={k: round(v / base, 3) for k, v in med.items()},
                load_average_1min=[None if l is None else round(l, 2) for l in loads])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--setting', choices=['both', 'large', 'small'], default='both')
    p.add_argument('--repeats', type=int, default=5)
    p.add_argument('--device', default='cpu')
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--no-stock', action='store_true', help="skip fastai's stock GANLearner")
    p.add_argument('--out', default=str(Path(__file__).with_name('learner_results.json')))
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    res = dict(machine=dict(cpu=cpu_name(), cores=os.cpu_count(), torch_threads=torch.get_num_threads(),
                            gpu=torch.cuda.get_device_name(0) if a.device.startswith('cuda') else None,
                            python=platform.python_version(), torch=torch.__version__),
               date=time.strftime('%Y-%m-%d %H:%M'))
    for name in (['large', 'small'] if a.setting == 'both' else [a.setting]):
        s = dict(SETTINGS[name]); stock = s.pop('stock') and not a.no_stock
        r = res[name] = bench(**s, repeats=a.repeats, device=a.device, stock=stock, user=name == 'small')
        st = r['setting']
        print(f"{name}: {st['size']} px, batch {st['bs']}, nf {st['nf']}, {st['steps']} update pairs x {st['repeats']} repeats "
              f"on {res['machine']['cpu']} ({res['machine']['cores']} cores, {torch.get_num_threads()} thread(s), {st['device']}); "
              f"1-min load average {r['load_average_1min']}")
        base = r['seconds_per_update_pair']['plain PyTorch loop']
        for k, v in r['seconds_per_update_pair'].items():
            print(f'  {k:44s} {v * 1000:8.2f} ms per update pair   {v / base:5.2f}x plain')
    if a.out:
        old = json.loads(Path(a.out).read_text()) if Path(a.out).exists() and a.setting != 'both' else {}
        old = old if 'machine' in old and 'large' in old else {}
        Path(a.out).write_text(json.dumps({**old, **res}, indent=1))
        print(f'wrote {a.out}')
    return res


if __name__ == '__main__':
    main()
