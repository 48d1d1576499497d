"""Nothing the kit loads can run code: a pickle payload planted in each kind of file it reads never runs, and the command says in
one line which file it refused. Also: generators round-trip through safetensors, older `.pth` files still load, and a full disk
never tears a file."""
import errno, json, os, pickle, shutil, subprocess, sys, textwrap
from pathlib import Path
import numpy as np, pytest, torch
from PIL import Image

from dcgan_course.core import atomic_write, atomic_save, atomic_write_json, safe_load
from dcgan_course.layers import Generator, Critic
from dcgan_course.data import gan_dataloaders
from dcgan_course.learner import DCGANLearner, generate
from dcgan_course.train import load_generator, dcgan_learner, _write_generator

TINY = ['--size', '16', '--nf', '8', '--nz', '8', '--bs', '32', '--max-items', '64']


class Payload:
    "What an attacker plants: unpickling this object writes `marker` (it could as well run a shell)."
    def __init__(self, marker): self.marker = Path(marker)
    def __reduce__(self): return (Path.write_text, (self.marker, 'the payload ran'))


def plant(obj:dict, dest, marker):
    "Save the real data `obj` with a payload beside it, as torch.save writes any checkpoint."
    torch.save(dict(obj, payload=Payload(marker)), dest)
    return Path(dest)


def run(*args, ok=True, env=None):
    r = subprocess.run(list(args), capture_output=True, text=True, timeout=600, env=env)
    if ok: assert r.returncode == 0, f'{args} failed:\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}'
    return r


def refused(r, name:str):
    "The command failed with status 2 and one line on standard error that names `name`, no traceback."
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, (r.returncode, r.stdout[-1000:], r.stderr[-3000:])
    assert 'Traceback' not in r.stderr and len(lines) == 1, r.stderr
    assert name in lines[0], lines[0]
    return lines[0]


def tiny_gen(seed=0, size=16, **kw):
    torch.manual_seed(seed)
    g = Generator(size, nz=8, nc=1, nf=8, **kw)
    for p in g.parameters(): torch.nn.init.normal_(p, std=0.1)   # not the initial weights: a round trip must carry them
    return g.eval()


def write_pngs(folder, n=3, size=16):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n): Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(folder/f'{i}.png')
    return folder


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    "A one-epoch run folder from dcgan_train; tests copy it before planting anything."
    d = tmp_path_factory.mktemp('trained')
    run('dcgan_train', *TINY, '--epochs', '1', '--out', str(d/'run'), env=dict(os.environ, DCGAN_CACHE=str(d/'_cache')))
    return d/'run'


@pytest.fixture
def run_copy(trained, tmp_path):
    shutil.copytree(trained, tmp_path/'run')
    return tmp_path/'run'


def test_the_planted_payload_is_real(tmp_path):
    "The attack the other tests refuse: an unsafe load of the planted file runs the payload."
    f = plant({'state_dict': tiny_gen().state_dict()}, tmp_path/'evil.pth', tmp_path/'marker')
    torch.load(f, weights_only=False)
    assert (tmp_path/'marker').read_text() == 'the payload ran'


def test_run_folder_holds_safetensors_and_json(trained):
    names = {p.name for p in trained.iterdir()}
    assert {'generator.safetensors', 'generator.json', 'checkpoint.pth'} <= names and 'generator.pth' not in names
    arch = json.loads((trained/'generator.json').read_text())
    assert arch['format'] == 'dcgan_course generator' and arch['config']['size'] == 16 and arch['config']['nz'] == 8
    torch.load(trained/'checkpoint.pth', weights_only=True)     # PyTorch's own allowlist reads it: nothing but plain data


# ---- a payload in each kind of file ----

def test_sample_and_fid_refuse_a_planted_generator_pth(tmp_path):
    g, marker = tiny_gen(), tmp_path/'marker'
    (tmp_path/'old').mkdir()
    plant(dict(config=g.config, state_dict=g.state_dict()), tmp_path/'old'/'generator.pth', marker)
    for target in (tmp_path/'old', tmp_path/'old'/'generator.pth'):
        line = refused(run('dcgan_sample', str(target), '--out', str(tmp_path/'g.png'), ok=False), 'generator.pth')
        assert 'safe load refuses' in line
    refused(run('dcgan_fid', str(tmp_path/'old'), str(write_pngs(tmp_path/'imgs')), '--n', '2', ok=False), 'generator.pth')
    assert not marker.exists() and not (tmp_path/'g.png').exists()


def test_corrupt_safetensors_or_json_is_one_line(run_copy, tmp_path):
    st, js = run_copy/'generator.safetensors', run_copy/'generator.json'
    good_st, good_js = st.read_bytes(), js.read_text()
    st.write_bytes(good_st[:len(good_st) // 2])
    refused(run('dcgan_sample', str(run_copy), ok=False), 'generator.safetensors')
    st.write_bytes(b'\x10\x00\x00\x00\x00\x00\x00\x00{"not": "closed')
    refused(run('dcgan_fid', str(run_copy), str(write_pngs(tmp_path/'imgs')), ok=False), 'generator.safetensors')
    st.write_bytes(good_st)
    js.write_text(good_js[:len(good_js) // 2])
    refused(run('dcgan_sample', str(run_copy), ok=False), 'generator.json')
    arch = json.loads(good_js); arch['config']['size'] = 32      # the description of another generator
    js.write_text(json.dumps(arch))
    assert 'describe different generators' in refused(run('dcgan_sample', str(st), ok=False), 'generator.json')


def test_resume_refuses_a_planted_checkpoint(run_copy, tmp_path):
    ck = run_copy/'checkpoint.pth'
    plant(safe_load(ck, 'a checkpoint'), ck, tmp_path/'marker')
    line = refused(run('dcgan_train', '--out', str(run_copy), '--resume', '--epochs', '2', ok=False), 'checkpoint.pth')
    assert 'safe load refuses' in line
    refused(run('dcgan_sample', str(ck), ok=False), 'checkpoint.pth')
    assert not (tmp_path/'marker').exists()


def test_resume_in_process_refuses_a_planted_checkpoint(run_copy, tmp_path, capsys):
    "The same through `dcgan_course.cli.dcgan_train(argv)`: here an unsafe load would run the payload in this very process."
    from dcgan_course.cli import dcgan_train
    ck = run_copy/'checkpoint.pth'
    plant(safe_load(ck, 'a checkpoint'), ck, tmp_path/'marker')
    with pytest.raises(SystemExit) as e: dcgan_train(['--out', str(run_copy), '--resume', '--epochs', '2'])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1 and 'checkpoint.pth' in err, err
    assert not (tmp_path/'marker').exists()


def test_resume_with_another_size_names_the_field(run_copy):
    line = refused(run('dcgan_train', '--out', str(run_copy), '--resume', '--epochs', '2', '--size', '32', ok=False), 'checkpoint.pth')
    assert '--size 16' in line and '--size 32' in line, line      # the command line speaks in flags


def test_resume_from_an_incomplete_checkpoint(run_copy):
    ck = run_copy/'checkpoint.pth'
    d = safe_load(ck, 'a checkpoint'); del d['opt']; atomic_save(d, ck)
    assert 'lacks opt' in refused(run('dcgan_train', '--out', str(run_copy), '--resume', '--epochs', '2', ok=False), 'checkpoint.pth')


def test_best_fid_generator_planted(tmp_path):
    from dcgan_course.fid import FIDCallback
    g, marker = tiny_gen(), tmp_path/'marker'
    plant(dict(config=g.config, state_dict=g.state_dict()), tmp_path/'generator_best_fid.pth', marker)
    cb = FIDCallback(); cb.run_path = tmp_path
    with pytest.raises(ValueError, match='generator_best_fid.pth is not a dcgan_course generator') as e: cb.load_best()
    assert '\n' not in str(e.value)
    refused(run('dcgan_sample', str(tmp_path/'generator_best_fid.pth'), ok=False), 'generator_best_fid.pth')
    assert not marker.exists()


def test_best_fid_generator_round_trip(tmp_path):
    "The best-FID generator is written as safetensors + JSON, and `load_best` reads it back from the run folder."
    from dcgan_course.fid import FIDCallback
    learn = dcgan_learner(gan_dataloaders('digits', size=16, bs=32, nz=8, max_items=64), net_kwargs=dict(nf=8))
    for p in learn.generator.parameters(): torch.nn.init.normal_(p, std=0.1)
    learn.save_generator(tmp_path/'generator_best_fid.safetensors')
    want = generate(learn.sample_generator, 4, seed=0)
    for p in learn.generator.parameters(): torch.nn.init.zeros_(p)
    cb = FIDCallback(); cb.learn, cb.run_path = learn, tmp_path
    cb.load_best()
    assert torch.equal(generate(learn.sample_generator, 4, seed=0), want)


def test_decode_cache_planted(tmp_path, digits_folder):
    "The decoded-image cache (a .pt in the cache folder) is read as data only: the payload never runs."
    args = ['dcgan_train', '--data', str(digits_folder), '--size', '16', '--nf', '8', '--nz', '8', '--bs', '32', '--epochs', '1']
    run(*args, '--out', str(tmp_path/'a'))
    cached = sorted(Path(os.environ['DCGAN_CACHE']).rglob('images-*.pt'))
    assert len(cached) == 1, cached
    plant(safe_load(cached[0], 'a decode cache'), cached[0], tmp_path/'marker')
    r = run(*args, '--out', str(tmp_path/'b'), ok=False)
    assert not (tmp_path/'marker').exists()
    if r.returncode == 0: safe_load(cached[0], 'a decode cache')     # rebuilt without the payload
    else: refused(r, cached[0].name)


@pytest.mark.parametrize('how', ['flag', 'env'])
def test_fid_weights_planted(tmp_path, how):
    a, b = write_pngs(tmp_path/'a'), write_pngs(tmp_path/'b')
    marker = tmp_path/'marker'
    evil = plant({'state_dict': {'fc.bias': torch.zeros(1008)}}, tmp_path/'evil.pth', marker)
    env = dict(os.environ, DCGAN_FID_WEIGHTS=str(evil)) if how == 'env' else None
    extra = ['--weights', str(evil)] if how == 'flag' else []
    line = refused(run('dcgan_fid', str(a), str(b), '--no-cache', *extra, ok=False, env=env), 'evil.pth')
    assert 'safe load refuses' in line
    (tmp_path/'evil.pkl').write_bytes(pickle.dumps({'x': Payload(marker)}, protocol=4))   # a plain pickle, not torch's zip
    env = dict(os.environ, DCGAN_FID_WEIGHTS=str(tmp_path/'evil.pkl')) if how == 'env' else None
    extra = ['--weights', str(tmp_path/'evil.pkl')] if how == 'flag' else []
    refused(run('dcgan_fid', str(a), str(b), '--no-cache', *extra, ok=False, env=env), 'evil.pkl')
    assert not marker.exists()


# ---- generators: safetensors, older files, errors ----

def test_safetensors_round_trip(tmp_path):
    from safetensors.torch import load_file
    learn = dcgan_learner(gan_dataloaders('digits', size=16, bs=32, nz=8, max_items=64, noise='uniform'), net_kwargs=dict(nf=8))
    for p in learn.generator.parameters(): torch.nn.init.normal_(p, std=0.1)
    st = learn.save_generator(tmp_path/'generator.safetensors')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['generator.json', 'generator.safetensors']
    for src in (tmp_path, st, tmp_path/'generator.json'):
        g = load_generator(src)
        assert torch.equal(generate(g, 6, seed=3), generate(learn.sample_generator, 6, seed=3))
        assert (g.noise, g.config, g.source) == ('uniform', learn.generator.config, learn.dls.train.source)
    assert set(load_file(st)) == set(learn.generator.state_dict())      # a plain safetensors file: any reader opens it


def test_attribute_rows_round_trip(tmp_path):
    g = tiny_gen(n_attrs=3)
    rows = torch.tensor([[1, 0, 1], [0, 1, 1]], dtype=torch.uint8)
    _write_generator(g, tmp_path/'g', vocab=['Smiling', 'Male', 'Beard'], attr_rows=rows)
    h = load_generator(tmp_path/'g.safetensors')
    assert h.vocab == ['Smiling', 'Male', 'Beard'] and torch.equal(h.attr_rows, rows.float())
    z, c = torch.randn(2, 8, 1, 1), rows.float()
    assert torch.equal(generate(h, z=z, cond=c), generate(g, z=z, cond=c))


def test_legacy_generator_pth_still_loads(tmp_path):
    g = tiny_gen(); g.noise = 'uniform'
    old = dict(config=g.config, state_dict=g.state_dict(), noise='uniform', vocab=None, source='digits')   # as runs wrote it before
    torch.save(old, tmp_path/'generator.pth')
    h = load_generator(tmp_path)
    assert h.noise == 'uniform' and torch.equal(generate(h, 4, seed=0), generate(g, 4, seed=0))


def test_legacy_checkpoint_with_numpy_rng_state_still_resumes(tmp_path):
    def learner():
        torch.manual_seed(0)
        dls = gan_dataloaders('digits', size=16, bs=32, nz=8, max_items=64)
        return DCGANLearner(dls, Generator(16, nz=8, nc=1, nf=8), Critic(16, nc=1, nf=8))
    a = learner()
    a.save_checkpoint(tmp_path/'ck.pth', 2)
    ck = safe_load(tmp_path/'ck.pth', 'a checkpoint')
    np.random.seed(123); old_np = np.random.get_state()
    ck['rng'] = dict(ck['rng'], numpy=old_np)       # as checkpoints were written before: NumPy's array itself
    torch.save(ck, tmp_path/'old.pth')
    np.random.seed(0)
    assert learner().load_checkpoint(tmp_path/'old.pth') == 2
    assert np.array_equal(np.random.get_state()[1], old_np[1])


def test_checkpoint_mismatch_changes_nothing(tmp_path):
    dls = gan_dataloaders('digits', size=16, bs=32, nz=8, max_items=64)
    DCGANLearner(dls, Generator(16, nz=8, nc=1, nf=8), Critic(16, nc=1, nf=8)).save_checkpoint(tmp_path/'ck.pth', 1)
    b = DCGANLearner(dls, Generator(16, nz=8, nc=1, nf=16), Critic(16, nc=1, nf=16))
    before = [p.clone() for p in b.generator.parameters()]
    with pytest.raises(ValueError) as e: b.load_checkpoint(tmp_path/'ck.pth')
    msg = str(e.value)
    assert 'ck.pth was trained with nf=8' in msg and 'now have nf=16' in msg and '\n' not in msg, msg
    assert all(torch.equal(x, y) for x, y in zip(before, b.generator.parameters()))


def test_load_generator_errors(tmp_path):
    torch.save({'weights': tiny_gen().state_dict()}, tmp_path/'x.pth')
    with pytest.raises(ValueError, match='x.pth is not a dcgan_course generator or checkpoint'): load_generator(tmp_path/'x.pth')
    torch.save({'config': tiny_gen().config}, tmp_path/'y.pth')
    with pytest.raises(ValueError, match='y.pth is not a dcgan_course generator or checkpoint'): load_generator(tmp_path/'y.pth')
    (tmp_path/'empty').mkdir()
    with pytest.raises(FileNotFoundError, match=str(tmp_path/'empty')): load_generator(tmp_path/'empty')
    (tmp_path/'x.pth').write_bytes(b'')
    with pytest.raises(ValueError, match='x.pth is not a dcgan_course generator'): load_generator(tmp_path/'x.pth')


# ---- writes a full disk cannot tear ----

def _enospc(tmp):
    Path(tmp).write_bytes(b'half a file')
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp))


def test_atomic_write_on_a_full_disk_keeps_the_old_file(tmp_path):
    f = tmp_path/'checkpoint.pth'
    atomic_write_json(f, {'old': True})
    with pytest.raises(OSError) as e: atomic_write(f, _enospc)
    assert (type(e.value), e.value.errno, e.value.filename) == (OSError, errno.ENOSPC, str(f))
    assert f'{f}' in str(e.value) and 'No space left' in str(e.value)
    assert json.loads(f.read_text()) == {'old': True} and [p.name for p in tmp_path.iterdir()] == ['checkpoint.pth']


def test_atomic_save_when_fsync_reports_a_full_disk(tmp_path, monkeypatch):
    "Some file systems (NFS, quotas) report ENOSPC only at fsync: the same outcome, via `atomic_save`."
    import dcgan_course.core as core
    f = tmp_path/'ck.pth'
    atomic_save({'a': torch.ones(3)}, f)
    def no_space(fd): raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(core.os, 'fsync', no_space)
    with pytest.raises(OSError) as e: atomic_save({'a': torch.zeros(3)}, f)
    monkeypatch.undo()
    assert (e.value.errno, e.value.filename) == (errno.ENOSPC, str(f))
    assert torch.equal(safe_load(f, 'a test file')['a'], torch.ones(3)) and [p.name for p in tmp_path.iterdir()] == ['ck.pth']


def test_temporary_file_name(tmp_path):
    seen = []
    atomic_write(tmp_path/'generator.json', lambda tmp: (seen.append(Path(tmp).name), Path(tmp).write_text('{}')))
    assert seen == [f'.generator.json.{os.getpid()}.tmp']


def test_write_past_the_file_size_limit_is_efbig(tmp_path):
    "A real limit (`ulimit -f`): the write fails with EFBIG naming the file, not with torch's 'unexpected pos'; the old file stays."
    f = tmp_path/'ck.pth'
    atomic_save({'a': torch.ones(3)}, f)
    code = textwrap.dedent(f'''
        import resource, torch, json
        from dcgan_course.core import atomic_save
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
        try: atomic_save({{'a': torch.zeros(1_000_000)}}, {str(f)!r})
        except OSError as e: print(json.dumps([type(e).__name__, e.errno, e.filename]))
        ''')
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == ['OSError', errno.EFBIG, str(f)]
    assert torch.equal(safe_load(f, 'a test file')['a'], torch.ones(3)) and [p.name for p in tmp_path.iterdir()] == ['ck.pth']
