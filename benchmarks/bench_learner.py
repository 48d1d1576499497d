"""Time the dcgan_course learner against a plain PyTorch DCGAN loop (and fastai's stock GANLearner) in one run.

All three train the same networks (copies of one initialisation) on the same replayed batches. The plain loop is PyTorch's
examples/dcgan step with two torch.optim.Adam optimizers. Runs are interleaved and repeated; we report the median seconds
per update pair (one critic step + one generator step) and the ratios. Results go to benchmarks/learner_results.json.

    python benchmarks/bench_learner.py                 # 32 px, batch 64, nf 64: the issue's setting
    python benchmarks/bench_learner.py --size 64 --repeats 3
"""
import argparse, copy, json, os, platform, statistics, sys, time, warnings
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F


def cpu_name():
    try:
        for line in open('/proc/cpuinfo'):
            if line.startswith('model name'): return line.split(':', 1)[1].strip()
    except OSError: pass
    return platform.processor() or platform.machine()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--size', type=int, default=32)
    p.add_argument('--bs', type=int, default=64)
    p.add_argument('--nf', type=int, default=64)
    p.add_argument('--steps', type=int, default=28, help='update pairs per timed run (28 = one epoch of the digits)')
    p.add_argument('--repeats', type=int, default=5)
    p.add_argument('--device', default='cpu')
    p.add_argument('--no-stock', action='store_true', help="skip fastai's stock GANLearner")
    p.add_argument('--out', default=str(Path(__file__).with_name('learner_results.json')))
    a = p.parse_args(argv)

    from fastai.torch_core import set_seed
    from dcgan_course.data import gan_dataloaders
    from dcgan_course.layers import dcgan_nets
    from dcgan_course.learner import DCGANLearner, plain_dcgan_steps, replay_dls, gen_loss_bce, crit_loss_bce
    from fastai.vision.gan import GANLearner
    from fastai.optimizer import Adam

    dev = torch.device(a.device)
    set_seed(0)
    dls = gan_dataloaders('digits', size=a.size, bs=a.bs)
    G0, D0 = dcgan_nets(dls, nf=a.nf)
    batches = [tuple(t.to(dev) for t in dls.one_batch()) for _ in range(a.steps)]
    sync = (lambda: torch.cuda.synchronize()) if dev.type == 'cuda' else (lambda: None)

    def nets():
        return copy.deepcopy(G0).to(dev), copy.deepcopy(D0).to(dev)

    def run_plain():
        G, D = nets(); sync(); t = time.perf_counter()
        plain_dcgan_steps(G, D, batches); sync()
        return (time.perf_counter() - t) / a.steps

    def run_learner():
        G, D = nets()
        learn = DCGANLearner(replay_dls(batches), G, D)
        sync(); t = time.perf_counter()
        with learn.no_bar(), learn.no_logging(): learn.fit(1)
        sync()
        return (time.perf_counter() - t) / a.steps

    def run_stock():
        # fastai's GANLearner gives each batch to one network: 2 * steps batches make `steps` update pairs.
        G, D = nets()
        learn = GANLearner(replay_dls(batches + batches), G, D,
                           gen_loss_func=lambda fp, out, tgt: gen_loss_bce(fp.view(-1), torch.ones(len(fp), device=fp.device)),
                           crit_loss_func=lambda rp, fp: crit_loss_bce(rp.view(-1), fp.view(-1), torch.ones(len(rp), device=rp.device),
                                                                       torch.zeros(len(fp), device=fp.device)),
                           opt_func=partial(Adam, mom=0.5, sqr_mom=0.999, eps=1e-8, wd=0.), lr=2e-4, switch_eval=False)
        sync(); t = time.perf_counter()
        with learn.no_bar(), learn.no_logging(), warnings.catch_warnings():
            warnings.simplefilter('ignore'); learn.fit(1)
        sync()
        return (time.perf_counter() - t) / a.steps

    runners = {'plain PyTorch loop': run_plain, 'dcgan_course learner': run_learner}
    if not a.no_stock: runners["fastai stock GANLearner"] = run_stock
    for f in runners.values(): f()   # warm-up (allocator, oneDNN kernels)
    times = {k: [] for k in runners}
    for r in range(a.repeats):
        for k, f in runners.items(): times[k].append(f())
    med = {k: statistics.median(v) for k, v in times.items()}
    base = med['plain PyTorch loop']
    res = dict(setting=dict(size=a.size, bs=a.bs, nf=a.nf, steps=a.steps, repeats=a.repeats, device=str(dev)),
               machine=dict(cpu=cpu_name(), cores=os.cpu_count(), torch_threads=torch.get_num_threads(),
                            gpu=torch.cuda.get_device_name(0) if dev.type == 'cuda' else None,
                            python=platform.python_version(), torch=torch.__version__),
               seconds_per_update_pair={k: round(v, 5) for k, v in med.items()},
               all_runs={k: [round(x, 5) for x in v] for k, v in times.items()},
               ratio_to_plain={k: round(v / base, 3) for k, v in med.items()},
               date=time.strftime('%Y-%m-%d'))
    print(f"{a.size} px, batch {a.bs}, nf {a.nf}, {a.steps} update pairs x {a.repeats} repeats on {res['machine']['cpu']} "
          f"({res['machine']['cores']} cores, {dev})")
    for k in runners: print(f'  {k:26s} {med[k] * 1000:8.1f} ms per update pair   {med[k] / base:5.2f}x plain')
    Path(a.out).write_text(json.dumps(res, indent=1))
    print(f'wrote {a.out}')
    return res


if __name__ == '__main__':
    main()
