"The GPU benchmark runs where the project is tested, so that a device's short time is not spent on a broken script."
import json, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_bench_gpu_runs_on_the_cpu(tmp_path):
    "A smoke run on the CPU: every setting that runs here is timed against the plain loop and written to the JSON; none fails."
    out = tmp_path/'gpu.json'
    r = subprocess.run([sys.executable, str(ROOT/'benchmarks'/'bench_gpu.py'), '--device', 'cpu', '--sizes', '16', '--bss', '16', '--nf', '8',
                        '--steps', '4', '--repeats', '1', '--no-compile', '--out', str(out)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    res = json.loads(out.read_text())
    rows = res['settings']['16px_bs16']
    assert set(rows) == {'plain loop, replayed batches', 'pytorch/examples recipe', 'dcgan_course learner, end to end'}, rows
    assert rows['plain loop, replayed batches']['ratio_to_plain'] == 1.0
    assert all(r['ms_per_update_pair'] > 0 and 'error' not in r for r in rows.values()), rows
    assert res['device'] and res['torch']


def test_bench_defaults_times_both_recipes(tmp_path):
    "A smoke run of the step-time check between the defaults and the paper's recipe: both timed, their ratio written."
    out = tmp_path/'d.json'
    r = subprocess.run([sys.executable, str(ROOT/'benchmarks'/'bench_defaults.py'), '--size', '16', '--nf', '8', '--max-items', '256',
                        '--repeats', '1', '--out', str(out)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    res = json.loads(out.read_text())
    assert set(res['ms_per_step']) == {'paper (RECIPES["dcgan"])', 'defaults (Recipe())'} and all(v > 0 for v in res['ms_per_step'].values())
    assert res['ratio_defaults_to_paper'] > 0 and res['device']


def test_bench_pieces_quick_writes_every_ratio(tmp_path):
    "A smoke run of the piece-by-piece benchmark: every piece timed against the plain loop and the learner without it."
    out = tmp_path/'pieces.json'
    r = subprocess.run([sys.executable, str(ROOT/'benchmarks'/'bench_pieces.py'), '--quick', '--out', str(out)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    res = json.loads(out.read_text())
    pieces = {'dispatch_cache', 'device_smoothing', 'check_every', 'stock_bar', 'progress_swap', 'compile', 'bf16',
              'all_on'}
    assert set(res['ratios']) == pieces | {'plain', 'bare'}, res['ratios']
    assert res['ratios']['plain'] == 1.0 and all(v > 0 for v in res['ratios'].values())
    assert set(res['vs_without']) == pieces and res['vs_without']['progress_swap']['without'] == 'stock_bar'
    assert res['device'] and res['torch'] and res['settings']['quick'] and res['gpu']['measured'] is False


def test_committed_pieces_results_have_what_the_recipe_reads():
    "The committed CPU run: a full run (not --quick), with the ratios the recipe reads, and the GPU marked unmeasured."
    res = json.loads((ROOT/'benchmarks'/'pieces_results.json').read_text())
    assert not res['settings']['quick'] and res['settings']['repeats'] >= 5
    assert res['ratios']['compile'] > 0 and res['ratios']['bf16'] > 0
    assert res['gpu']['measured'] is False and '--device cuda' in res['gpu']['note']
