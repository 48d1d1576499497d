"""Time each piece of the learner's speed machinery alone, against a plain PyTorch DCGAN loop, in one run.

The plain loop is PyTorch's examples/dcgan step with two torch.optim.Adam optimizers (`plain_dcgan_steps`). Every runner
trains copies of one initialisation on the same replayed batches. Runs are interleaved and repeated; we report the
median seconds per update pair (one critic step + one generator step) and two ratios per piece:

- `ratios[piece]`: time with the piece / time of the plain loop;
- `vs_without[piece]`: time with the piece / time of the same learner without it (the piece's own cost or gain).

The runners. `bare` is the learner with every piece off: fastai's own event dispatch (`Learner.__call__`), fastai's
`AvgSmoothLoss` (a copy to the host per batch), `check_every=1`, no progress bar, eager float32. Each piece is then
turned on alone:

- `dispatch_cache`: the learner's `__call__`, which sends a step event only to the callbacks that define it;
- `device_smoothing`: the smoothed loss kept on the device (`DCGANLearner`'s own smoother);
- `check_every`: the NaN guard reading the losses every 16 batches instead of every batch;
- `progress_swap`: the learner's progress bar (reads the loss on check batches only) against fastai's stock bar
  (`stock_bar`, which reads it every batch), both with `check_every=16`;
- `compile`: `compile=True` (both networks compiled in place, after a warm-up epoch that compiles);
- `bf16`: `bf16=True` (bf16 autocast around the forward passes and losses);
- on CUDA only, `compile_reduce_overhead`: `compile='reduce-overhead'` (torch.compile's CUDA graphs).

`all_on` is the learner as it ships (every piece at its default, no bar), for reference. The learner has no
channels_last option, so that piece is not timed.

Settings: on the CPU the small networks of bench_learner.py (16 px, batch 16, 8 wide, one thread), where what the loop
adds per step shows; on CUDA (`--device cuda`) bench_gpu.py's first setting (32 px, batch 64, 64 wide, one epoch of the
digits). Results: benchmarks/pieces_results.json (CPU) or benchmarks/pieces_gpu_results.json (CUDA).

    python benchmarks/bench_pieces.py                  # the CPU run (about 1-2 minutes)
    python benchmarks/bench_pieces.py --quick --out /tmp/p.json    # a smoke run for the tests
    python benchmarks/bench_pieces.py --device cuda
"""
import argparse, contextlib, copy, io, os, platform, statistics, sys, time, warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_learner import cpu_name, load_avg, replay_setup      # one reader each for every benchmark

SETTINGS = dict(cpu=dict(size=16, bs=16, nf=8, steps=112, repeats=9),       # bench_learner.py's `small` setting
                cuda=dict(size=32, bs=64, nf=64, steps=28, repeats=5),      # bench_gpu.py's 32px_bs64: a digits epoch
                quick=dict(size=16, bs=16, nf=8, steps=6, repeats=1))
# each piece, and the runner it is compared with in `vs_without`
WITHOUT = dict(dispatch_cache='bare', device_smoothing='bare', check_every='bare', stock_bar='check_every',
               progress_swap='stock_bar', compile='bare', bf16='bare', compile_reduce_overhead='bare', all_on='bare')
GPU_UNMEASURED = "not measured here (no GPU in this run): python benchmarks/bench_pieces.py --device cuda"
WHAT = dict(bare="the learner with every piece off",
            dispatch_cache="calls a per-step event's callbacks from a list made once, not every callback each time",
            device_smoothing="keeps the smoothed loss on the device instead of copying it to the host each batch",
            check_every="reads the NaN guard's losses every 16 batches instead of every batch",
            stock_bar="fastai's own progress bar, reading the loss every batch",
            progress_swap="the learner's progress bar, reading the loss on check batches only",
            compile="compiles both networks in place (nn.Module.compile)",
            bf16="runs the forward passes and the losses under bf16 autocast",
            compile_reduce_overhead="compiles both networks with CUDA graphs",
            all_on="the learner as it ships, every piece at its default")
GPU_REASON = {'device_smoothing', 'check_every', 'progress_swap', 'compile', 'bf16', 'compile_reduce_overhead'}


def runners(size, bs, nf, steps, device='cpu', pieces=None):
    "A dict `{name: go}`: `go()` trains one pass over the replayed batches and returns seconds per update pair."
    from fastai.learner import Learner, AvgSmoothLoss
    from fastai.callback.progress import ProgressCallback
    from dcgan_course.learner import DCGANLearner, plain_dcgan_steps, replay_dls

    class FastaiDispatch(DCGANLearner):
        "The learner with fastai's own event dispatch: every event asks every callback."
        __call__ = Learner.__call__

    class StockBar(ProgressCallback):
        "fastai's progress bar as it is (a subclass, so that `fit` keeps it): it reads the smoothed loss every batch."

    dev, dls, G0, D0, batches, sync = replay_setup(size, bs, nf, steps, device)

    def nets(): return copy.deepcopy(G0).to(dev), copy.deepcopy(D0).to(dev)

    def plain():
        G, D = nets()
        def go():
            sync(); t = time.perf_counter(); plain_dcgan_steps(G, D, batches); sync()
            return (time.perf_counter() - t) / steps
        return go

    def learner(cache=False, smooth=False, check_every=1, bar=None, **kw):
        cls = DCGANLearner if cache else FastaiDispatch
        learn = cls(replay_dls(batches), *nets(), check_every=check_every, **kw)
        if not smooth: learn.recorder.smooth_loss = AvgSmoothLoss(learn.recorder.smooth_loss.beta)
        if bar == 'stock': learn.remove_cb(ProgressCallback); learn.add_cb(StockBar())
        def go():
            out = io.StringIO()     # the bar's text goes here, not to the terminal
            sync(); t = time.perf_counter()
            with contextlib.ExitStack() as s:
                if bar is None: s.enter_context(learn.no_bar())
                s.enter_context(learn.no_logging()); s.enter_context(contextlib.redirect_stdout(out))
                s.enter_context(warnings.catch_warnings()); warnings.simplefilter('ignore')
                learn.fit(1)
            sync()
            return (time.perf_counter() - t) / steps
        return go

    makers = dict(plain=plain, bare=learner,
                  dispatch_cache=lambda: learner(cache=True),
                  device_smoothing=lambda: learner(smooth=True),
                  check_every=lambda: learner(check_every=16),
                  stock_bar=lambda: learner(check_every=16, bar='stock'),
                  progress_swap=lambda: learner(check_every=16, bar='swap'),
                  compile=lambda: learner(compile=True),
                  bf16=lambda: learner(bf16=True),
                  all_on=lambda: learner(cache=True, smooth=True, check_every=16))
    if dev.type == 'cuda': makers['compile_reduce_overhead'] = lambda: learner(compile='reduce-overhead')
    keep = {'plain', 'bare'} | set(pieces or makers) | {WITHOUT[p] for p in (pieces or ()) if p in WITHOUT}
    return {k: m() for k, m in makers.items() if k in keep}


def bench(size, bs, nf, steps, repeats, device='cpu', pieces=None):
    "Median seconds per update pair of every runner, timed interleaved, and the ratios."
    rs = runners(size, bs, nf, steps, device, pieces)
    for f in rs.values(): f()       # warm-up: allocator, oneDNN kernels, and the compiled runners compile here
    times, loads = {k: [] for k in rs}, []
    for _ in range(repeats):
        loads.append(load_avg())
        for k, f in rs.items(): times[k].append(f())
    med = {k: statistics.median(v) for k, v in times.items()}
    return dict(ms_per_update_pair={k: round(v * 1000, 4) for k, v in med.items()},
                all_ms={k: [round(x * 1000, 4) for x in v] for k, v in times.items()},
                ratios={k: round(v / med['plain'], 3) for k, v in med.items()},
                vs_without={k: dict(without=WITHOUT[k], ratio=round(med[k] / med[WITHOUT[k]], 3))
                            for k in med if k in WITHOUT and WITHOUT[k] in med},
                load_average_1min=loads)


def verdict(ratio, noise=0.03):
    "A ratio of times in words: what the piece saves or costs, or that it is within `noise` of 1."
    if ratio <= 1 - noise: return f"saves {(1 - ratio) * 100:.0f}% ({ratio:.3f}x)"
    if ratio >= 1 + noise: return f"costs {(ratio - 1) * 100:.0f}% ({ratio:.3f}x)"
    return f"is within the noise ({ratio:.3f}x)"


def report(res):
    "The results as text: a table (ms per update pair, ratios), then one sentence per piece."
    s = res['settings']
    lines = [f"{s['size']} px, batch {s['bs']}, nf {s['nf']}, {s['steps']} update pairs, median of {s['repeats']} "
             f"repeats "
             f"on {res['device']} (torch {res['torch']}, {res['threads'] or 'GPU'} thread(s))",
             f"  {'runner':24s} {'ms/pair':>9s} {'x plain':>8s}  {'x without':>9s}  without"]
    for k, ms in res['ms_per_update_pair'].items():
        vs = res['vs_without'].get(k)
        without = f"{vs['ratio']:9.3f}  {vs['without']}" if vs else ''
        lines.append(f"  {k:24s} {ms:9.3f} {res['ratios'][k]:8.3f}  {without}")
    lines.append('')
    gpu = res['gpu']['measured']
    for k, vs in res['vs_without'].items():
        if k == 'stock_bar': continue
        tail = ' GPU: not measured here.' if k in GPU_REASON and not gpu else ''
        lines.append(f"{k}: {WHAT[k]}; against {vs['without']} it {verdict(vs['ratio'])}.{tail}")
    if not gpu: lines.append(f"GPU: {res['gpu']['note']}")
    return '\n'.join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--device', default='cpu')
    p.add_argument('--quick', action='store_true', help='a smoke run: 6 update pairs, one repeat')
    p.add_argument('--repeats', type=int, default=None)
    p.add_argument('--steps', type=int, default=None, help='update pairs per timed run')
    p.add_argument('--pieces', nargs='+', choices=list(WITHOUT), default=None, 
                   help='time only these (and what they compare with)')
    p.add_argument('--threads', type=int, default=1, help='torch threads on the CPU')
    p.add_argument('--out', default=None, 
                   help='the JSON file (default: benchmarks/pieces_results.json, or pieces_gpu_results.json)')
    a = p.parse_args(argv)
    cuda = a.device.startswith('cuda')
    if cuda and not torch.cuda.is_available(): sys.exit("--device cuda: no CUDA device here")
    if not cuda: torch.set_num_threads(a.threads)
    s = dict(SETTINGS['quick' if a.quick else 'cuda' if cuda else 'cpu'])
    if a.repeats: s['repeats'] = a.repeats
    if a.steps: s['steps'] = a.steps
    t0 = time.perf_counter()
    r = bench(**s, device=a.device, pieces=a.pieces)
    name = torch.cuda.get_device_name(torch.device(a.device)) if cuda else cpu_name()
    res = dict(device=name, torch=torch.__version__, python=platform.python_version(), cores=os.cpu_count(),
               threads=None if cuda else torch.get_num_threads(), date=time.strftime('%Y-%m-%d %H:%M'),
               settings=dict(**s, device=a.device, quick=a.quick), **r,
               gpu=dict(device=name, measured=True) if cuda else dict(measured=False, note=GPU_UNMEASURED),
               seconds_total=round(time.perf_counter() - t0, 1))
    print(report(res)); print(f"1-min load average {r['load_average_1min']}")
    out = a.out or str(Path(__file__).with_name('pieces_gpu_results.json' if cuda else 'pieces_results.json'))
    from dcgan_course.core import atomic_write_json
    atomic_write_json(out, res); print(f'wrote {out} in {res["seconds_total"]} s')
    return res


if __name__ == '__main__':
    main()
