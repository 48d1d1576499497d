"End-to-end tests of the console scripts, run as a user would: as separate processes."
import csv, errno, json, os, subprocess, sys, tempfile, time
from pathlib import Path
import pytest, torch
from PIL import Image
from fastai.callback.core import Callback
from dcgan_course.cli import dcgan_train, dcgan_sample, dcgan_fid, _run_safely

FAST = ['--size', '16', '--nf', '16', '--bs', '32', '--max-items', '256']


def run(*args, ok=True):
    r = subprocess.run(list(args), capture_output=True, text=True, timeout=600)
    if ok: assert r.returncode == 0, f'{args} failed:\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}'
    return r


def rows(path):
    with open(path) as f: return list(csv.DictReader(f))


def test_train_sample_resume(tmp_path):
    out = tmp_path/'run'
    r = run('dcgan_train', *FAST, '--epochs', '2', '--out', str(out))
    assert 'digits' in r.stdout
    # not a terminal: one plain line per epoch, no progress-bar redraws
    assert [l.split(':')[0] for l in r.stdout.splitlines() if l.startswith('epoch ')] == ['epoch 1/2', 'epoch 2/2']
    assert '\r' not in r.stdout + r.stderr and 'd_fake' in r.stdout
    assert 'we measured' not in r.stdout            # the CPU note on --compile and --bf16: not on a plain run
    for f in ('samples.png', 'samples/epoch_001.png', 'samples/epoch_002.png', 'metrics.csv', 'checkpoint.pth', 'recipe.json'):
        assert (out/f).exists(), f
    assert list(out.glob('generator.*')) and not (out/'run.lock').exists()     # the generator, in its format; the folder let go
    m = rows(out/'metrics.csv')
    assert [r['epoch'] for r in m] == ['1', '2']
    assert {'epoch', 'gen_loss', 'crit_loss', 'd_real', 'd_fake', 'seconds'} <= set(m[0])
    assert all(float(r['seconds']) > 0 and 0 < float(r['d_real']) < 1 for r in m)
    assert Image.open(out/'samples.png').size == (8 * 18 + 2, 8 * 18 + 2)

    ck = torch.load(out/'checkpoint.pth', weights_only=False)
    assert ck['epoch'] == 2
    # resume: continues the epoch count, keeps the saved settings, appends to the CSV
    r = run('dcgan_train', '--out', str(out), '--resume', '--epochs', '3')
    assert 'resuming' in r.stdout
    assert [r['epoch'] for r in rows(out/'metrics.csv')] == ['1', '2', '3']
    assert torch.load(out/'checkpoint.pth', weights_only=False)['epoch'] == 3
    assert (out/'samples/epoch_003.png').exists()

    run('dcgan_sample', str(out), '--n', '9', '--out', str(tmp_path/'g.png'))
    assert Image.open(tmp_path/'g.png').size == (3 * 18 + 2, 3 * 18 + 2)
    run('dcgan_sample', str(out), '--n', '7', '--folder', '--out', str(tmp_path/'fakes'))
    files = sorted((tmp_path/'fakes').glob('*.png'))
    assert len(files) == 7 and Image.open(files[0]).size == (16, 16)


@pytest.mark.parametrize('extra', [[], ['--diffaug', 'translation,cutout']], ids=['defaults', 'diffaug'])
def test_resume_at_the_defaults_is_exact(tmp_path, extra):
    """Two epochs in one go, or one and then a resume: the same networks and the same moving average of the generator, bit for bit;
    also with DiffAugment's random shifts and holes. (`--lr-decay` plans its schedule over --epochs, so a run that a resume lengthens
    is another run; a resume in the middle of its schedule is `tests/test_learner.py::test_resume_mid_schedule_is_exact`.)"""
    run('dcgan_train', *FAST, *extra, '--epochs', '2', '--out', str(tmp_path/'once'))
    run('dcgan_train', *FAST, *extra, '--epochs', '1', '--out', str(tmp_path/'twice'))
    run('dcgan_train', '--out', str(tmp_path/'twice'), '--resume', '--epochs', '2')
    a, b = (torch.load(tmp_path/k/'checkpoint.pth', weights_only=False) for k in ('once', 'twice'))
    r = json.loads((tmp_path/'once'/'recipe.json').read_text())
    assert a['ema'] is not None and (r['ema'], r['lr'], r['lr_d']) == (0.95, 1e-3, 4e-4)   # the defaults average G, train D slower
    for part in ('generator', 'critic', 'ema'):
        assert a[part].keys() == b[part].keys() and all(torch.equal(a[part][k], b[part][k]) for k in a[part]), part


def test_same_seed_same_run(tmp_path):
    for name in ('a', 'b'):
        run('dcgan_train', *FAST, '--epochs', '1', '--seed', '5', '--out', str(tmp_path/name))
    drop = lambda rs: [{k: v for k, v in r.items() if k != 'seconds'} for r in rs]
    assert drop(rows(tmp_path/'a'/'metrics.csv')) == drop(rows(tmp_path/'b'/'metrics.csv'))


def test_train_on_a_folder(tmp_path, digits_folder):
    out = tmp_path/'run'
    run('dcgan_train', '--data', str(digits_folder), '--size', '16', '--nf', '8', '--bs', '32', '--epochs', '1', '--out', str(out))
    assert json.loads((out/'recipe.json').read_text())['data'] == str(digits_folder)
    assert rows(out/'metrics.csv')[0]['epoch'] == '1'


@pytest.mark.parametrize('args,message', [
    (['--data', '/no/such/folder'], 'Data folder not found'),
    (['--size', '24'], 'power of two'),
    (['--epochs', '0'], '--epochs must be at least 1'),
    (['--lr', '-1'], '--lr must be positive'),
    (['--diffaug', 'colour'], "--diffaug: unknown augmentation 'colour'"),
    (['--ema', '0'], '--ema: the EMA decay must be in (0, 1), got 0.0 (none: no average)'),      # the one "off" is `none`
    (['--lr-d', '0'], "--lr-d must be positive (none: the critic's rate is --lr), got 0"),
    (['--label-smoothing', '0.9'], 'argument --label-smoothing: expected 2 arguments'),  # a pair: 0.9 0.9 is one-sided
    (['--conditional', '--attrs', 'Smiling'], 'use --conditional (classes) or --attrs (attributes), not both'),
    (['--balance'], '--balance needs labels: set --conditional or --attrs'),
    (['--compile', 'fast'], "--compile 'fast' is not a torch.compile mode"),      # in flag terms
    (['--data', 'celeba', '--data-root', '/tmp/definitely-not-here'], 'celeba data set was not found'),
])
def test_train_bad_input(tmp_path, args, message):
    r = run('dcgan_train', '--out', str(tmp_path/'x'), *args, ok=False)
    assert r.returncode == 2
    assert message in r.stderr
    assert 'Traceback' not in r.stderr
    assert not (tmp_path/'x').exists()          # refused before it wrote anything: no run folder left behind


def test_train_empty_and_corrupt_folders(tmp_path):
    (tmp_path/'empty').mkdir()
    r = run('dcgan_train', '--data', str(tmp_path/'empty'), '--out', str(tmp_path/'x'), ok=False)
    assert r.returncode == 2 and 'No image files found' in r.stderr and 'Traceback' not in r.stderr
    (tmp_path/'bad').mkdir()
    for i in range(3): (tmp_path/'bad'/f'{i}.jpg').write_text('not a jpeg')
    r = run('dcgan_train', '--data', str(tmp_path/'bad'), '--out', str(tmp_path/'x'), ok=False)
    assert r.returncode == 2 and 'could be read' in r.stderr


def test_resume_without_a_run(tmp_path):
    r = run('dcgan_train', '--out', str(tmp_path/'nothing'), '--resume', ok=False)
    assert r.returncode == 2 and 'Nothing to resume' in r.stderr


def test_sample_bad_input(tmp_path):
    r = run('dcgan_sample', str(tmp_path/'missing'), ok=False)
    assert r.returncode == 2 and 'No such generator' in r.stderr
    (tmp_path/'junk.pth').write_bytes(b'not a checkpoint')
    r = run('dcgan_sample', str(tmp_path/'junk.pth'), ok=False)
    assert r.returncode == 2 and 'not a dcgan_course generator' in r.stderr and 'Traceback' not in r.stderr


def test_named_recipe_then_config_trains_the_same_model(tmp_path, digits_folder):
    "--recipe starts from a seed's recipe and flags override it; --config on its recipe.json trains the same weights again."
    a = tmp_path/'a'
    run('dcgan_train', '--recipe', 'seed004-simpsons', '--data', str(digits_folder), '--size', '16', '--nf', '8', '--epochs', '1', '--out', str(a))
    r = json.loads((a/'recipe.json').read_text())
    assert (r['name'], r['ks'], r['swap_labels'], r['label_smoothing'], r['size'], r['nf']) == ('seed004-simpsons', 5, True, [0.7, 1.2], 16, 8)
    b = tmp_path/'b'
    run('dcgan_train', '--config', str(a/'recipe.json'), '--out', str(b))
    ka, kb = (torch.load(p/'checkpoint.pth', weights_only=False) for p in (a, b))
    for net in ('generator', 'critic'):
        for k in ka[net]: assert torch.equal(ka[net][k], kb[net][k]), (net, k)


def test_recipe_lfw_faces_trains_on_the_embedded_faces(tmp_path):
    "The lfw-faces recipe's data, 'lfw', is embedded like the digits: the recipe runs as listed, with no data folder."
    out = tmp_path/'faces'
    r = run('dcgan_train', '--recipe', 'lfw-faces', '--size', '16', '--nf', '8', '--epochs', '1', '--out', str(out))
    assert "data: lfw (scikit-image, 200 images: LFW's real 25x25 faces" in r.stdout
    assert list(out.glob('generator.*'))
    r = json.loads((out/'recipe.json').read_text())
    assert (r['name'], r['data'], r['size']) == ('lfw-faces', 'lfw', 16)


def test_cli_and_python_build_the_same_conditional_model(tmp_path):
    "The critic a conditional dcgan_train run trains is the one recipe_learner builds from the run's recipe (they once differed)."
    from dcgan_course.recipe import load_recipe, recipe_learner
    out = tmp_path/'cond'
    run('dcgan_train', *FAST, '--epochs', '1', '--conditional', '--out', str(out))
    ck = torch.load(out/'checkpoint.pth', weights_only=False)
    learn = recipe_learner(load_recipe(out), device='cpu')
    assert ck['crit_config'] == learn.critic.config and ck['gen_config'] == learn.generator.config
    assert {k: v.shape for k, v in ck['critic'].items()} == {k: v.shape for k, v in learn.critic.state_dict().items()}
    assert type(learn.critic).__name__ == 'ChannelCritic'


def test_resume_overrides_and_unknown_recipe(tmp_path):
    out = tmp_path/'run'
    run('dcgan_train', *FAST, '--epochs', '1', '--out', str(out))
    run('dcgan_train', '--out', str(out), '--resume', '--epochs', '2', '--ema', '0.99')   # a flag typed at resume overrides the saved field
    r = json.loads((out/'recipe.json').read_text())
    assert (r['epochs'], r['ema'], r['size']) == (2, 0.99, 16)
    bad = run('dcgan_train', '--recipe', 'seed999', ok=False)
    assert bad.returncode == 2 and 'Unknown recipe' in bad.stderr and 'seed004-simpsons' in bad.stderr


def test_unexpected_error_is_one_line_with_the_run_folder(tmp_path):
    "An error nobody foresaw (here a checkpoint cut short on disk) ends with one line that points to the run folder's error.log."
    out = tmp_path/'run'
    run('dcgan_train', *FAST, '--epochs', '1', '--out', str(out))
    data = (out/'checkpoint.pth').read_bytes()
    (out/'checkpoint.pth').write_bytes(data[:len(data) // 2])
    r = run('dcgan_train', '--out', str(out), '--resume', '--epochs', '2', ok=False)
    assert r.returncode in (1, 2), r.stderr
    assert 'Traceback' not in r.stderr and r.stderr.strip().count('\n') == 0, r.stderr
    assert str(out) in r.stderr


def test_help_writes_each_default_once():
    r = run('dcgan_train', '--help')
    out = ' '.join(r.stdout.split())       # argparse wraps lines
    assert '(default: None)' not in out and out.count('(default: 64)') == 3     # --bs, --n-samples, --nf
    assert '--recipe NAME' in out and 'seed004-simpsons' in out and '--mbstd, --no-mbstd' in out


def test_skipped_files_are_said_and_recorded_whatever_the_warning_filters(tmp_path, digits_folder):
    (digits_folder/'3'/'broken.png').write_text('<html>not a png</html>')
    out = tmp_path/'run'
    env = dict(os.environ, PYTHONWARNINGS='ignore')
    r = subprocess.run(['dcgan_train', '--data', str(digits_folder), '--size', '16', '--nf', '8', '--bs', '32', '--epochs', '1',
                        '--out', str(out)], capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'Skipped 1 unreadable image file(s) of 201' in r.stderr and 'broken.png' in r.stderr
    assert (out/'skipped_files.txt').read_text().strip().endswith('broken.png')


def test_sample_attrs_draws_the_unnamed_attributes_from_the_data(tmp_path):
    "dcgan_sample --attrs Loop=1 fixes Loop and draws Bold and Odd as the training data has them (not all 0)."
    from dcgan_course.fixtures import toy_celeba
    from dcgan_course.core import sample_condition
    from dcgan_course.train import load_generator
    folder = toy_celeba(tmp_path/'toy', size=16)
    out = tmp_path/'run'
    run('dcgan_train', '--data', str(folder), '--attrs', 'Loop,Bold,Odd', '--size', '16', '--nf', '8', '--bs', '32', '--epochs', '1',
        '--out', str(out))
    g = load_generator(out)
    assert g.vocab == ['Loop', 'Bold', 'Odd'] and g.attr_rows is not None and g.attr_rows.shape[1] == 3
    c = sample_condition(g, 2000, attrs='Loop=1', seed=0)
    assert (c[:, 0] == 1).all()
    assert 0.3 < c[:, 1].mean() < 0.7 and 0.3 < c[:, 2].mean() < 0.7          # Bold and Odd: about half the data each
    data = {tuple(r) for r in g.attr_rows[:, 1:].tolist()}
    assert {tuple(r) for r in c[:, 1:].tolist()} <= data                        # only combinations the data has
    r = run('dcgan_sample', str(out), '--attrs', 'Loop=1', '--n', '16', '--out', str(tmp_path/'loops.png'))
    assert (tmp_path/'loops.png').exists()


def test_tensorboard_flag_writes_scalars_and_grids(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    out = tmp_path/'run'
    run('dcgan_train', *FAST, '--epochs', '2', '--tensorboard', '--out', str(out))
    ea = EventAccumulator(str(out/'tensorboard')).Reload()
    assert {'gan/gen_loss', 'gan/crit_loss', 'gan/d_real', 'gan/d_fake'} <= set(ea.Tags()['scalars'])
    assert [e.step for e in ea.Scalars('gan/d_real')] == [1, 2] and [e.step for e in ea.Images('samples')] == [1, 2]


def test_bf16_on_a_cpu_says_once_that_it_was_measured_slower(tmp_path):
    from dcgan_course.cli import CPU_PIECES
    r = run('dcgan_train', *FAST, '--epochs', '1', '--bf16', '--device', 'cpu', '--out', str(tmp_path/'run'))
    notes = [l for l in r.stdout.splitlines() if 'we measured' in l]
    assert len(notes) == 1 and f"--bf16 {CPU_PIECES['bf16']:g}x" in notes[0] and 'CUDA GPU' in notes[0], r.stdout


def test_the_32_px_run_is_two_flags_away():
    "The default run is 16 px, 80 epochs (21_ablation); `--size 32 --epochs 25` is the paper's run with the defaults."
    from dcgan_course.cli import recipe_from_args
    from dcgan_course.recipe import RECIPES
    r = recipe_from_args([])[0]
    assert (r.size, r.epochs) == (16, 80)
    r = recipe_from_args(['--size', '32', '--epochs', '25'])[0]
    assert set(r.changes(RECIPES['dcgan'])) == {'lr', 'lr_d', 'ema', 'monitor'}


def test_the_cpu_ratios_are_the_measured_ones():
    "`CPU_PIECES`, which the note prints, holds what benchmarks/bench_pieces.py measured on the CPU."
    from dcgan_course.cli import CPU_PIECES
    f = Path(__file__).parent.parent/'benchmarks'/'pieces_results.json'
    if not f.exists(): pytest.skip('no benchmarks/pieces_results.json yet: python benchmarks/bench_pieces.py')
    res = json.loads(f.read_text())
    ratio = {k: res['vs_without'][k]['ratio'] for k in ('compile', 'bf16')}     # time with the piece / without it
    for k, v in ratio.items(): assert abs(v - CPU_PIECES[k]) < 0.01, (k, v, CPU_PIECES[k])
    assert CPU_PIECES['machine'] == f"{res['device']}, {res['cores']} cores"


# --- one owner per run folder, faults in one line ---

def one_line(err:str) -> bool:
    return len(err.strip().splitlines()) == 1 and 'Traceback' not in err


def epochs(out): return [r['epoch'] for r in rows(out/'metrics.csv')]


def exits(f, argv, capsys):
    "Run a console script in-process; (exit status, what it wrote on stderr)."
    with pytest.raises(SystemExit) as e: f(argv)
    return e.value.code, capsys.readouterr().err


def test_a_new_run_into_a_run_folder_is_refused_and_overwrite_starts_over(tmp_path):
    out = tmp_path/'run'
    run('dcgan_train', *FAST, '--epochs', '2', '--out', str(out))
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    r = run('dcgan_train', *FAST, '--epochs', '1', '--out', str(out), ok=False)
    assert r.returncode == 2 and one_line(r.stderr) and 'already holds a run' in r.stderr, r.stderr
    assert '--resume' in r.stderr and '--overwrite' in r.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before        # nothing touched
    (out/'notes.txt').write_text('mine')
    run('dcgan_train', *FAST, '--epochs', '1', '--out', str(out), '--overwrite')
    assert epochs(out) == ['1'] and not (out/'samples'/'epoch_002.png').exists() and (out/'notes.txt').read_text() == 'mine'
    assert json.loads((out/'recipe.json').read_text())['epochs'] == 1
    r = run('dcgan_train', '--out', str(out), '--resume', '--overwrite', ok=False)
    assert r.returncode == 2 and 'not both' in r.stderr


def test_a_second_run_is_refused_while_the_first_lives_and_a_resume_tidies_after_a_kill(tmp_path):
    out = tmp_path/'run'
    first = subprocess.Popen(['dcgan_train', *FAST, '--epochs', '1000', '--out', str(out)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        t0 = time.time()
        while not (out/'checkpoint.pth').exists():
            assert first.poll() is None and time.time() - t0 < 300, 'the first run did not get to a checkpoint'
            time.sleep(0.2)
        for extra in ([], ['--overwrite'], ['--resume']):
            r = run('dcgan_train', *FAST, '--epochs', '2', '--out', str(out), *extra, ok=False)
            assert r.returncode == 2 and one_line(r.stderr) and f'in use by another run (pid {first.pid} on ' in r.stderr, r.stderr
    finally:
        first.kill(); first.wait()          # kill -9: its lock goes with it
    ck = torch.load(out/'checkpoint.pth', weights_only=False)['epoch']
    # as if killed between epoch ck + 1's metrics row and its checkpoint, in the middle of writing that checkpoint
    done = rows(out/'metrics.csv')[:ck]
    with open(out/'metrics.csv', 'w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=list(done[0])); w.writeheader(); w.writerows(done + [{**done[-1], 'epoch': ck + 1}])
    gone = subprocess.Popen([sys.executable, '-c', 'pass']); gone.wait()
    (out/f'.checkpoint.pth.{gone.pid}.tmp').write_bytes(b'half a checkpoint')
    run('dcgan_train', '--out', str(out), '--resume', '--epochs', str(ck + 2))
    assert epochs(out) == [str(e) for e in range(1, ck + 3)]        # each epoch once, in order
    assert not list(out.rglob('*.tmp')) and not (out/'run.lock').exists()


def test_resume_with_other_nets_is_refused_and_keeps_the_recipe(tmp_path):
    out = tmp_path/'run'
    run('dcgan_train', *FAST, '--epochs', '1', '--out', str(out))
    before = (out/'recipe.json').read_bytes()
    r = run('dcgan_train', '--out', str(out), '--resume', '--size', '32', '--epochs', '2', ok=False)
    assert r.returncode == 2 and one_line(r.stderr) and 'size' in r.stderr, r.stderr
    assert (out/'recipe.json').read_bytes() == before           # still the run's own: it can be resumed
    run('dcgan_train', '--out', str(out), '--resume', '--epochs', '2')
    assert epochs(out) == ['1', '2']


BAD_FIELDS = [('bn', 'false'), ('monitor', 'no'), ('epochs', '2'), ('epochs', 2.5), ('lr', True), ('fake_smoothing', '0 0.3'),
              ('lr', float('nan')), ('beta1', float('inf')), ('label_smoothing', [0.9, float('nan')]), ('size', None), ('data', 5)]


@pytest.mark.parametrize('field,value', BAD_FIELDS, ids=[f'{k}={v!r}' for k, v in BAD_FIELDS])
def test_a_hand_edited_recipe_of_the_wrong_type_is_refused_naming_the_field(tmp_path, capsys, field, value):
    from dcgan_course.recipe import RECIPES
    f = tmp_path/'recipe.json'
    f.write_text(json.dumps({**RECIPES['digits'].to_dict(), field: value}))     # Python's json writes NaN and Infinity as they come
    code, err = exits(dcgan_train, ['--config', str(f), '--out', str(tmp_path/'x')], capsys)
    assert code == 2 and one_line(err) and f"recipe.json: field {field!r} must be" in err, err
    assert not (tmp_path/'x').exists()


def test_an_edited_recipe_of_a_run_is_refused_at_resume(tmp_path, capsys):
    out = tmp_path/'run'
    run('dcgan_train', *FAST, '--epochs', '1', '--out', str(out))
    r = json.loads((out/'recipe.json').read_text()); r['bn'] = 'false'
    (out/'recipe.json').write_text(json.dumps(r))
    code, err = exits(dcgan_train, ['--out', str(out), '--resume', '--epochs', '2'], capsys)
    assert code == 2 and one_line(err) and "field 'bn' must be true or false, got the string 'false'" in err, err
    assert epochs(out) == ['1']


@pytest.mark.parametrize('flag', [['--lr', 'nan'], ['--instance-noise', 'nan'], ['--beta1', 'inf'], ['--label-smoothing', '0.9', 'nan']],
                         ids=lambda f: ' '.join(f))
def test_nan_flags_are_refused_before_any_data_loads(tmp_path, capsys, flag):
    code, err = exits(dcgan_train, ['--data', str(tmp_path/'no_such_folder'), '--out', str(tmp_path/'x'), *flag], capsys)
    assert code == 2 and one_line(err) and f'{flag[0]} must be a finite number' in err, err     # not 'Data folder not found'
    assert not (tmp_path/'x').exists()


class Interrupt(Callback):
    "Ctrl-C in the middle of epoch `at` (0-based)."
    def __init__(self, at): self.at = at
    def after_batch(self):
        if self.epoch == self.at and self.iter == 2: raise KeyboardInterrupt


@pytest.mark.parametrize('at,said', [(0, 'nothing has been saved in {out} yet'), (2, '{out}/checkpoint.pth holds epoch 2')],
                         ids=['before-a-checkpoint', 'after-two'])
def test_ctrl_c_says_which_folder_and_epoch_are_saved(tmp_path, capsys, monkeypatch, at, said):
    import dcgan_course.recipe as rm
    cbs = rm.recipe_callbacks
    monkeypatch.setattr(rm, 'recipe_callbacks', lambda r, **kw: cbs(r, **kw) + [Interrupt(at)])
    out = tmp_path/'run'
    code, err = exits(dcgan_train, [*FAST, '--epochs', '4', '--out', str(out)], capsys)
    assert code == 130 and one_line(err) and said.format(out=out) in err, err
    assert not (out/'run.lock').exists()


def test_a_full_disk_at_a_checkpoint_is_one_line_and_keeps_the_last_one(tmp_path, capsys, monkeypatch):
    out, replace = tmp_path/'run', os.replace
    def full(src, dst, *a, **k):
        if Path(dst).name == 'checkpoint.pth' and Path(dst).exists(): raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))
        return replace(src, dst, *a, **k)
    monkeypatch.setattr(os, 'replace', full)
    code, err = exits(dcgan_train, [*FAST, '--epochs', '3', '--out', str(out)], capsys)
    monkeypatch.setattr(os, 'replace', replace)
    assert code == 1 and one_line(err), err
    assert err.startswith(f'dcgan_train: error: cannot write {out/"checkpoint.pth"}: No space left on device (ENOSPC); '
                          f'{out}/checkpoint.pth holds epoch 1, intact'), err
    assert torch.load(out/'checkpoint.pth', weights_only=False)['epoch'] == 1 and not list(out.rglob('.*.tmp'))
    assert dcgan_train(['--out', str(out), '--resume', '--epochs', '2']) == out
    assert epochs(out) == ['1', '2']


def test_the_error_log_goes_where_it_can_be_written_and_never_raises(tmp_path, capsys, monkeypatch):
    import dcgan_course.cli as cli
    monkeypatch.setattr(tempfile, 'tempdir', str(tmp_path))
    def bug():
        e = KeyError('a bug'); e.run_dir = tmp_path/'gone'       # a run folder that is not there
        raise e
    code, err = exits(lambda _: _run_safely('dcgan_train', bug), None, capsys)
    log = tmp_path/f'dcgan_error_{os.getpid()}.log'
    assert code == 1 and one_line(err) and f'the traceback is in {log}' in err and 'KeyError' in log.read_text()
    def no_room(f, text): raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(f))
    monkeypatch.setattr(cli, 'atomic_write_text', no_room)
    code, err = exits(lambda _: _run_safely('dcgan_train', bug), None, capsys)
    assert code == 1 and one_line(err) and 'unexpected KeyError' in err and 'traceback is in' not in err


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp('trained')/'run'
    run('dcgan_train', *FAST, '--epochs', '1', '--out', str(out))
    return out


SAMPLE_BAD = [(['--nrow', '-1'], '--nrow must be at least 1'), (['--nrow', '0'], '--nrow must be at least 1'),
              (['--n', '0'], '--n must be at least 1'), (['--seed', '-1'], '--seed must be in 0 .. 2**64-2'),
              (['--seed', str(2**64 - 1)], '--seed must be in'), (['--out', '{dir}'], 'is a folder'),
              (['--folder', '--out', '{file}'], 'is a file'), (['--label', '3'], 'not conditional'),
              (['--attrs', 'Smiling=1'], 'not conditional')]


@pytest.mark.parametrize('args,said', SAMPLE_BAD, ids=[' '.join(a) for a, _ in SAMPLE_BAD])
def test_sample_bad_arguments_get_one_line_each(trained, tmp_path, capsys, args, said):
    (tmp_path/'a.png').write_bytes(b'x')
    args = [a.format(dir=tmp_path, file=tmp_path/'a.png') for a in args]
    code, err = exits(dcgan_sample, [str(trained), *args], capsys)
    assert code == 2 and one_line(err) and said in err, err


def test_sample_of_a_file_without_weights_is_one_line(trained, tmp_path, capsys):
    from dcgan_course.train import load_generator
    f = tmp_path/'weightless.pth'
    torch.save(dict(config=load_generator(trained).config), f)
    code, err = exits(dcgan_sample, [str(f)], capsys)
    assert code == 2 and one_line(err) and str(f) in err, err


FID_BAD = [(['--n', '1'], '--n must be at least 2'), (['--n', '0'], '--n must be at least 2'), (['--bs', '0'], '--bs must be positive'),
           (['--seed', '-1'], '--seed must be in'), (['--device', 'gpu'], "--device 'gpu' is not a device"),
           (['--device', 'cuda:99'], '--device cuda:99'), (['MISSING'], 'not found')]


@pytest.mark.parametrize('args,said', FID_BAD, ids=[' '.join(a) for a, _ in FID_BAD])
def test_fid_bad_arguments_get_one_line_each(tmp_path, capsys, args, said):
    from conftest import write_png
    for i in range(3): write_png(tmp_path/'a'/f'{i}.png', seed=i); write_png(tmp_path/'b'/f'{i}.png', seed=i + 5)
    argv = [str(tmp_path/'a'), str(tmp_path/'b'), *args] if args != ['MISSING'] else [str(tmp_path/'a'), str(tmp_path/'missing')]
    code, err = exits(dcgan_fid, argv, capsys)
    assert code == 2 and one_line(err) and said in err, err
