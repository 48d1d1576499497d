"""Time a training step of the library's defaults against the DCGAN paper's recipe, interleaved, in one run.

`21_ablation` reports milliseconds per step from whole training runs, one arm after another; on a shared CPU another job can slow one
arm and not the other. Here both recipes train the same data in alternating epochs, repeated, so that a load on the machine falls
on both alike: the median seconds per step of each and their ratio (defaults / paper) go to benchmarks/defaults_results.json.
Both are built by `recipe_learner`, as `dcgan_train` builds them (with its failure monitor, without a run folder).

    python benchmarks/bench_defaults.py                 # 32 px, 64 wide, all the digits: dcgan_train's own size
    python benchmarks/bench_defaults.py --size 16 --nf 8 --max-items 256 --repeats 1 --out /tmp/d.json    # a smoke run
"""
import argparse, json, os, statistics, sys, time, warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_learner import cpu_name      # one CPU-name reader for every benchmark


def main(args=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--size', type=int, default=32); p.add_argument('--nf', type=int, default=64)
    p.add_argument('--max-items', type=int, default=None); p.add_argument('--repeats', type=int, default=15)
    p.add_argument('--out', default=str(Path(__file__).parent/'defaults_results.json'))
    a = p.parse_args(args)
    import torch
    from dcgan_course.recipe import Recipe, RECIPES, recipe_dls, recipe_learner
    arms = {'paper (RECIPES["dcgan"])': RECIPES['dcgan'].replace(monitor=True), 'defaults (Recipe())': Recipe()}
    arms = {k: r.replace(size=a.size, nf=a.nf, max_items=a.max_items, epochs=1) for k, r in arms.items()}
    learners = {k: recipe_learner(r, recipe_dls(r), device='cpu') for k, r in arms.items()}
    times = {k: [] for k in learners}
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        for rep in range(a.repeats + 1):                       # the first round warms up and is not counted
            for k, learn in learners.items():
                t0 = time.perf_counter()
                with learn.no_bar(), learn.no_logging(): learn.fit(1)
                if rep: times[k].append((time.perf_counter() - t0) / len(learn.dls.train))
    ms = {k: 1000 * statistics.median(v) for k, v in times.items()}
    paper, dflt = ms['paper (RECIPES["dcgan"])'], ms['defaults (Recipe())']
    res = dict(device=f'{os.cpu_count()}-core CPU ({cpu_name()}), no GPU', torch=torch.__version__, threads=torch.get_num_threads(),
               size=a.size, nf=a.nf, steps_per_epoch=len(next(iter(learners.values())).dls.train), repeats=a.repeats,
               ms_per_step={k: round(v, 1) for k, v in ms.items()},
               all_ms_per_step={k: [round(1000 * t, 1) for t in v] for k, v in times.items()},
               ratio_defaults_to_paper=round(dflt / paper, 3))
    Path(a.out).write_text(json.dumps(res, indent=1) + '\n')
    print(f"{a.size} px, {a.nf} wide: paper {paper:.0f} ms per step, defaults {dflt:.0f} ms per step, ratio {dflt / paper:.2f} "
          f"(median of {a.repeats} interleaved epochs each, {res['device']}) -> {a.out}")
    return res


if __name__ == '__main__': main()
