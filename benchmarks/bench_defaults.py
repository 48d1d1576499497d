"""Time a training step of the library's defaults against the DCGAN paper's recipe, interleaved, in one run; and, with
`--default-size`, choose `dcgan_train`'s default image size by measurement.

`21_ablation` reports milliseconds per step from whole training runs, one arm after another; on a shared CPU another job can slow one
arm and not the other. Here both recipes train the same data in alternating epochs, repeated, so that a load on the machine falls
on both alike: the median seconds per step of each and their ratio (defaults / paper) go to benchmarks/defaults_results.json.
Both are built by `recipe_learner`, as `dcgan_train` builds them (with its failure monitor, without a run folder).

`--default-size` trains `dcgan_train`'s default run (`Recipe()`) at its size and epochs and at the paper's here (32 px, 25
epochs: `RECIPES['dcgan']`), a few seeds each, judges each generator with the digit judge of `12_quality` (confident share,
rarest class), and times the sizes in alternating epochs (a run's time: seconds per step times its steps). The choice is
the first arm that is not worse than the last beyond the spread and whose means are at least the last's on both measures
(the default run must score at least what the 32 px run does). The result goes under `default_size` in the same JSON;
`21_ablation` prints it.

    python benchmarks/bench_defaults.py                 # 32 px, 64 wide, all the digits: the paper's size
    python benchmarks/bench_defaults.py --size 16 --nf 8 --max-items 256 --repeats 1 --out /tmp/d.json    # a smoke run
    python benchmarks/bench_defaults.py --default-size  # Recipe() against 32 px / 25 epochs, seeds 0-5 and 0-2 (about 30 min)
    python benchmarks/bench_defaults.py --default-size --arms 16x2 32x1 --seeds 0 --max-items 256 --repeats 1 --out /tmp/d.json
"""
import argparse, json, os, statistics, sys, time, warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_learner import cpu_name      # one CPU-name reader for every benchmark


def interleaved(recipes:dict, repeats:int) -> dict:
    "Median seconds per step of each recipe (name -> Recipe), one epoch each in turn, `repeats` rounds after a warm-up round."
    from dcgan_course.recipe import recipe_dls, recipe_learner
    learners = {k: recipe_learner(r, recipe_dls(r), device='cpu') for k, r in recipes.items()}
    times = {k: [] for k in learners}
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        for rep in range(repeats + 1):                       # the first round warms up and is not counted
            for k, learn in learners.items():
                t0 = time.perf_counter()
                with learn.no_bar(), learn.no_logging(): learn.fit(1)
                if rep: times[k].append((time.perf_counter() - t0) / len(learn.dls.train))
    return dict(ms={k: 1000 * statistics.median(v) for k, v in times.items()},
                all_ms={k: [round(1000 * t, 1) for t in v] for k, v in times.items()},
                steps={k: len(l.dls.train) for k, l in learners.items()})


def judged_run(r) -> dict:
    "Train recipe `r` on the CPU as `dcgan_train` does, quietly; its seconds and the digit judge's verdict on 1,000 samples."
    from dcgan_course.recipe import recipe_dls, recipe_learner
    from dcgan_course.quality import generator_quality
    dls = recipe_dls(r)
    learn = recipe_learner(r, dls, device='cpu')
    learn.gan_monitor.warn = False
    t0 = time.perf_counter()
    with warnings.catch_warnings(), learn.no_bar(), learn.no_logging():
        warnings.simplefilter('ignore'); learn.fit(r.epochs)
    secs = time.perf_counter() - t0
    q = generator_quality(learn.sample_generator, 1000, seed=1234)       # 21_ablation's judge and noise
    return dict(size=r.size, epochs=r.epochs, seed=r.seed, steps=r.epochs * len(dls.train), seconds=round(secs, 1),
                confident=round(float(q['confident']), 4), min_share=round(float(q['min_share']), 4))


def verdict(a:dict, b:dict) -> str:
    "21_ablation's rule for two arms' `{mean, std}`: a difference counts only beyond the two spreads added together."
    d, s = a['mean'] - b['mean'], a['std'] + b['std']
    return 'better' if d > s else 'worse' if -d > s else 'no difference'


def parse_arm(s:str) -> tuple:
    "'16x40' -> (16, 40): an image size and an epoch budget."
    size, epochs = s.lower().split('x')
    return int(size), int(epochs)


def default_size(a) -> dict:
    "The default run at each arm's size and epochs: `a.seeds` for the first arm, the first three for the others; the time."
    from dcgan_course.recipe import Recipe
    base = Recipe().replace(max_items=a.max_items)
    arms = [parse_arm(x) for x in a.arms]
    name = lambda size, epochs: f'{size} px, {epochs} epochs'
    rows = []
    for i, (size, epochs) in enumerate(arms):
        for seed in (a.seeds if i == 0 else a.seeds[:3]):
            rows.append(judged_run(base.replace(size=size, epochs=epochs, seed=seed)))
            print(json.dumps(rows[-1]), flush=True)
    t = interleaved({name(*arm): base.replace(size=arm[0], epochs=1) for arm in arms}, a.repeats)
    return summary(rows, arms, t)


def summary(rows:list, arms:list, t:dict) -> dict:
    "Mean and spread per arm, each arm's verdict against the last (the reference), the choice, and the time ratios."
    name = lambda size, epochs: f'{size} px, {epochs} epochs'
    by = {}
    for size, epochs in arms:
        rs = [r for r in rows if (r['size'], r['epochs']) == (size, epochs)]
        by[name(size, epochs)] = {k: dict(mean=round(statistics.mean(r[k] for r in rs), 4),
                                          std=round(statistics.pstdev(r[k] for r in rs), 4)) for k in ('confident', 'min_share')}
        by[name(size, epochs)]['seeds'] = [r['seed'] for r in rs]
    ref = name(*arms[-1])
    verdicts = {k: {m: verdict(by[k][m], by[ref][m]) for m in ('confident', 'min_share')} for k in by if k != ref}
    at_least = lambda k: all(by[k][m]['mean'] >= by[ref][m]['mean'] for m in ('confident', 'min_share'))
    chosen = next((k for k in by if k == ref or ('worse' not in verdicts[k].values() and at_least(k))), ref)
    run_s = {name(*arm): t['ms'][name(*arm)] * t['steps'][name(*arm)] * arm[1] / 1000 for arm in arms}
    return dict(recipe='Recipe() (dcgan_train with no arguments) at each arm\'s size and epochs', runs=rows, judged=by,
                verdicts_against=ref, verdicts=verdicts, chosen=chosen,
                ms_per_step={k: round(v, 1) for k, v in t['ms'].items()}, all_ms_per_step=t['all_ms'], steps_per_epoch=t['steps'],
                repeats=len(next(iter(t['all_ms'].values()))),
                time_ratio={k: round(v / run_s[ref], 3) for k, v in run_s.items()},
                time_ratio_is=f'whole run against {ref}, from seconds per step in interleaved epochs')


def main(args=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--size', type=int, default=32); p.add_argument('--nf', type=int, default=64)
    p.add_argument('--max-items', type=int, default=None)
    p.add_argument('--repeats', type=int, default=None, help='interleaved rounds (default: 15, or 5 with --default-size)')
    p.add_argument('--default-size', action='store_true', help='16 px against 32 px for the default run (see above)')
    p.add_argument('--arms', nargs='+', default=None,
                   help="SIZExEPOCHS, the reference last (default: Recipe()'s, then RECIPES['dcgan']'s: 32x25)")
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2, 3, 4, 5], help='all for the first size, 3 for the others')
    p.add_argument('--out', default=str(Path(__file__).parent/'defaults_results.json'))
    a = p.parse_args(args)
    import torch
    out = Path(a.out)
    old = json.loads(out.read_text()) if out.exists() else {}
    device = f'{os.cpu_count()}-core CPU ({cpu_name()}), no GPU'
    if a.default_size:
        from dcgan_course.recipe import Recipe, RECIPES
        a.repeats = 5 if a.repeats is None else a.repeats
        a.arms = a.arms or [f'{r.size}x{r.epochs}' for r in (Recipe(), RECIPES['dcgan'])]
        t0 = time.time()
        res = dict(old, default_size=dict(default_size(a), device=device, threads=torch.get_num_threads(),
                                          load_avg_1min=round(os.getloadavg()[0], 2), seconds=round(time.time() - t0)))
        out.write_text(json.dumps(res, indent=1) + '\n')
        d = res['default_size']
        print('; '.join(f"{k}: confident {v['confident']['mean']:.3f} ± {v['confident']['std']:.3f}, rarest class "
                        f"{v['min_share']['mean']:.3f}" for k, v in d['judged'].items())
              + f"; time {d['time_ratio']} ({d['time_ratio_is']}) on {device}; chosen: {d['chosen']} -> {out}")
        return res
    a.repeats = 15 if a.repeats is None else a.repeats
    from dcgan_course.recipe import Recipe, RECIPES
    arms = {'paper (RECIPES["dcgan"])': RECIPES['dcgan'].replace(monitor=True), 'defaults (Recipe())': Recipe()}
    arms = {k: r.replace(size=a.size, nf=a.nf, max_items=a.max_items, epochs=1) for k, r in arms.items()}
    t = interleaved(arms, a.repeats)
    ms = t['ms']
    paper, dflt = ms['paper (RECIPES["dcgan"])'], ms['defaults (Recipe())']
    res = dict(device=device, torch=torch.__version__, threads=torch.get_num_threads(),
               size=a.size, nf=a.nf, steps_per_epoch=next(iter(t['steps'].values())), repeats=a.repeats,
               ms_per_step={k: round(v, 1) for k, v in ms.items()}, all_ms_per_step=t['all_ms'],
               ratio_defaults_to_paper=round(dflt / paper, 3))
    if 'default_size' in old: res['default_size'] = old['default_size']        # the other measurement stays
    out.write_text(json.dumps(res, indent=1) + '\n')
    print(f"{a.size} px, {a.nf} wide: paper {paper:.0f} ms per step, defaults {dflt:.0f} ms per step, ratio {dflt / paper:.2f} "
          f"(median of {a.repeats} interleaved epochs each, {res['device']}) -> {a.out}")
    return res


if __name__ == '__main__': main()
