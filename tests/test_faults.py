"""Fault injection: `dcgan_train` killed, starved of disk or fed broken recipes, as a user's machine would do it.

Every run is a real `dcgan_train` process (forked by `tests/fault_runner.py`, which imports the library once); the
fault is planted at a low level (a rename, an fsync, `torch.save`, a backward pass, a file opened for writing), not
through library hooks.

Kill points (`KILL_POINTS`): the run is killed with SIGKILL, then `--resume` must end with networks bit-identical to an
uninterrupted run's and a `metrics.csv` with one row per epoch, 1..E in order:
  - mid-batch: in the middle of a batch of epoch 2 (at its 3rd backward pass);
  - metrics-row-then-checkpoint: after epoch 2's metrics row, before its checkpoint's file is opened;
  - checkpoint-fsync: inside epoch 2's checkpoint write, the temporary file written, at its fsync;
  - checkpoint-rename: inside epoch 2's checkpoint write, the temporary file complete, before the rename (the old
    checkpoint must still load, and the resume must remove the dead writer's `.checkpoint.pth.PID.tmp`);
  - checkpoint-then-generator: after epoch 2's checkpoint, before the generator file beside it;
  - resume-killed-again: killed before the rename of epoch 2's checkpoint, then the resume killed at the same place
    (the second writer's temp file must be the only one left: the first one's is removed);
  - decode-cache-write: a run on a folder of images killed mid-batch, its decode cache cleaned away, then the resume
    killed while it writes the cache again;
  - first-decode-cache-write: a new run on a folder killed while it writes the decode cache, before anything is saved:
    there is nothing to resume, and the same command again must start cleanly and train the same networks.
Disk faults (`DISK_FAULTS`), each at epoch 2's checkpoint: the run must stop with one line (no traceback) naming the
file and the cause, keep the last good checkpoint, and resume to the same networks:
  - disk-full: a small tmpfs filled up (ENOSPC injected where mounting is not allowed);
  - read-only: a read-only view mounted over the folder (EROFS injected where bind mounts are not allowed);
  - permission-denied: the folder made unwritable (EACCES injected as root, whom permissions do not stop);
  - file-size-limit: RLIMIT_FSIZE below the checkpoint's size (EFBIG);
and at the decode cache, which is only a cache: the run must train on to the same networks, saying so in one line:
  - cache-disk-full: the cache's folder on a full tmpfs (ENOSPC injected where mounting is not allowed);
  - corrupt-decode-cache: a decode cache cut in half: the next run moves it aside, decodes again, trains the same nets.
Bad inputs (`BAD_RECIPES`): a hand-edited recipe.json with a value of the wrong kind (a switch given "false" or 0, a
whole number given "2", 2.5, true or null, a number given true, "1e-3", NaN or Infinity, a pair given a string, one
number or NaN, a string given a number) or out of range (an EMA decay of 0), each given two ways (`RECIPE_ROUTES`:
`--config FILE`, and `--resume` of a run folder whose recipe.json was edited): refused before any training, with exit
status 2 and one line naming the field.

Set DCGAN_FAULTS_INJECT=1 to inject the disk faults even where the machine lets them be made for real.
"""
import csv, errno, json, os, re, shutil, subprocess, sys
from contextlib import ExitStack
from pathlib import Path
import pytest, torch

pytestmark = pytest.mark.skipif(sys.platform != 'linux', reason='the fault runner forks and reads /proc/self/fd')
HERE = Path(__file__).parent
TINY = ['--size', '16', '--nf', '8', '--nz', '8', '--bs', '16', '--max-items', '96', '--n-samples', '16',
        '--epochs', '3', '--ema', '0.9', '--diffaug', 'translation,cutout']    # 6 batches an epoch, a second a run
CPU = ['--device', 'cpu']
EPOCHS = ['1', '2', '3']
CK, CK_TMP, CK_ANY = r'^checkpoint\.pth$', r'^\.checkpoint\.pth\..+\.tmp$', r'^\.?checkpoint\.pth'
AFTER_1ST_CK = dict(name=CK, n=1)        # armed once epoch 1's checkpoint is in place: the fault hits epoch 2
AT_CK_OPEN = dict(hook='open', name=CK_ANY, after=AFTER_1ST_CK)   # epoch 2's checkpoint file about to be opened
MID_BATCH = dict(hook='backward', after=AFTER_1ST_CK, nth=3, action='kill')
BEFORE_CK_RENAME = dict(hook='replace', name=CK, after=AFTER_1ST_CK, action='kill')


def _cache_write(cache) -> dict:
    "Kill at the rename that completes a file in the decode cache."
    return dict(hook='replace', under=str(cache), action='kill')


# A kill point: the stages that get killed (a fresh run, or a resume), and what the run folder holds after each kill.
KILL_POINTS = [
    dict(id='mid-batch', data='digits', stages=[dict(fault=MID_BATCH, ck_epoch=1, rows=['1'], ck_tmp=False)]),
    dict(id='metrics-row-then-checkpoint', data='digits', stages=[dict(
        fault=dict(AT_CK_OPEN, action='kill'), ck_epoch=1, rows=['1', '2'], ck_tmp=False)]),
    dict(id='checkpoint-fsync', data='digits', stages=[dict(
        fault=dict(hook='fsync', name=CK_TMP, after=AFTER_1ST_CK, action='kill'),
        ck_epoch=1, rows=['1', '2'], ck_tmp=True)]),
    dict(id='checkpoint-rename', data='digits', stages=[dict(
        fault=BEFORE_CK_RENAME, ck_epoch=1, rows=['1', '2'], ck_tmp=True)]),
    dict(id='checkpoint-then-generator', data='digits', stages=[dict(
        fault=dict(hook='replace', name=r'^generator\.', after=dict(name=CK, n=2), action='kill'),
        ck_epoch=2, rows=['1', '2'], ck_tmp=False)]),
    dict(id='resume-killed-again', data='digits', stages=[
        dict(fault=BEFORE_CK_RENAME, ck_epoch=1, rows=['1', '2'], ck_tmp=True),
        dict(resume=True, fault=dict(hook='replace', name=CK, action='kill'),
             ck_epoch=1, rows=['1', '2'], ck_tmp=True)]),
    dict(id='decode-cache-write', data='folder', stages=[
        dict(fault=MID_BATCH, ck_epoch=1, rows=['1'], ck_tmp=False),
        dict(resume=True, clear_cache=True, fault='cache-write', ck_epoch=1, rows=['1'], ck_tmp=False,
             cache_tmp=True)]),
    dict(id='first-decode-cache-write', data='folder', recover='rerun', stages=[
        dict(fault='cache-write', ck_epoch=None, rows=None, ck_tmp=False, cache_tmp=True)]),
]

# A disk fault: the errno it makes, and how it is made for real where the machine allows (else it is injected).
DISK_FAULTS = [
    dict(id='disk-full', errno=errno.ENOSPC, real='tmpfs', at='write', file='checkpoint'),
    dict(id='read-only', errno=errno.EROFS, real='ro-bind', at='open', file='checkpoint'),
    dict(id='permission-denied', errno=errno.EACCES, real='chmod', at='open', file='checkpoint'),
    dict(id='file-size-limit', errno=errno.EFBIG, real='fsize', at='write', file='checkpoint'),
    dict(id='cache-disk-full', errno=errno.ENOSPC, real='tmpfs', at='write', file='cache'),
    dict(id='corrupt-decode-cache', errno=None, real='truncate', file='cache'),
]
CHECKPOINT_FAULTS = [k for k in DISK_FAULTS if k['file'] == 'checkpoint']

# A bad input: a recipe field and the JSON text hand-edited in for its value.
BAD_RECIPES = [
    ('fc', '"false"'),                 # a switch given a string
    ('bn', '0'),                       # a switch given a number
    ('epochs', '"2"'),                 # a whole number given a string
    ('epochs', '2.5'),                 # ... a fraction
    ('bs', 'true'),                    # ... a switch's value
    ('epochs', 'null'),                # ... nothing, where it is required
    ('max_items', '"96"'),             # an optional whole number given a string
    ('lr', 'true'),                    # a number given a switch's value
    ('lr', '"1e-3"'),                  # ... a string
    ('lr', 'NaN'),                     # ... not a number
    ('lr', 'Infinity'),                # ... infinity
    ('beta1', '-Infinity'),            # ... minus infinity
    ('fake_smoothing', '"0 0.3"'),     # a list given a string
    ('fake_smoothing', '[0, NaN]'),    # a list holding NaN
    ('label_smoothing', '"0.9"'),      # a pair given a string
    ('label_smoothing', '0.9'),        # ... one number (one-sided 0.9 is [0.9, 0.9])
    ('ema', '0'),                      # a decay out of range (no average is null)
    ('noise', '1'),                    # a string given a number
]
RECIPE_ROUTES = ('config', 'resume')

N_FAULTS, N_BAD_INPUTS = len(KILL_POINTS) + len(DISK_FAULTS), len(BAD_RECIPES)


# ------------------------------------------------------------------------------------------------------------ helpers
@pytest.fixture(scope='module')
def train(tmp_path_factory):
    "`train(argv, fault=None)`: run `dcgan_train argv` in a new process forked from one with the library loaded."
    env = dict(os.environ, OMP_NUM_THREADS='1', MPLBACKEND='Agg')
    p = subprocess.Popen([sys.executable, str(HERE/'fault_runner.py')], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True, env=env)
    ready = p.stdout.readline()
    assert ready and json.loads(ready)['ready'], 'the fault runner did not start: its error is in the captured stderr'
    shared = tmp_path_factory.mktemp('cache')
    def call(argv, fault=None, timeout=180):
        cache = os.environ.get('DCGAN_CACHE', shared)     # a test's own cache (conftest.py); in fixtures, the module's
        req = dict(argv=[str(a) for a in argv] + CPU, fault=fault, timeout=timeout, env={'DCGAN_CACHE': str(cache)})
        p.stdin.write(json.dumps(req) + '\n'); p.stdin.flush()
        line = p.stdout.readline()
        assert line, 'the fault runner died'
        r = json.loads(line)
        assert r['rc'] is not None, f"{argv} did not end in {timeout} s: {r.get('error', '')}\n{r['stderr'][-3000:]}"
        return r
    yield call
    p.stdin.close(); p.wait(60)


def ok(r):
    assert r['rc'] == 0, f"exit status {r['rc']}:\n{r['stdout'][-2000:]}\n{r['stderr'][-4000:]}"
    return r


def load_ck(path) -> dict:
    "A checkpoint, read as every file the kit reads back must be: without running code."
    return torch.load(path, map_location='cpu', weights_only=True)


def epochs(run) -> list:
    with open(Path(run)/'metrics.csv', newline='') as f: return [r['epoch'] for r in csv.DictReader(f)]


def assert_same_nets(a:dict, b:dict):
    for part in ('generator', 'critic', 'ema'):
        assert a[part] is not None and b[part] is not None, part
        assert a[part].keys() == b[part].keys(), part
        bad = [k for k in a[part] if not torch.equal(a[part][k], b[part][k])]
        assert not bad, f'{part}: {len(bad)} tensors differ from the uninterrupted run, e.g. {bad[:3]}'


def temp_files(folder) -> list:
    "The `.NAME.PID.tmp` files anywhere under `folder`."
    return sorted(p for p in Path(folder).rglob('.*.tmp') if p.is_file())


def cache_files(cache) -> tuple:
    "(complete files, temporary files) under the decode cache folder."
    files = sorted(p for p in Path(cache).rglob('*') if p.is_file())
    return [p for p in files if not p.name.endswith('.tmp')], [p for p in files if p.name.endswith('.tmp')]


def assert_finished_like(out, base):
    "`out` ended as the uninterrupted run `base`: same nets, a metrics row per epoch, no temporary file, a generator."
    from dcgan_course.train import load_generator
    a, b = load_ck(Path(base)/'checkpoint.pth'), load_ck(Path(out)/'checkpoint.pth')
    assert b['epoch'] == a['epoch'] == 3
    assert_same_nets(a, b)
    assert epochs(out) == EPOCHS
    assert temp_files(out) == []
    g = load_generator(out).state_dict()       # the folder's sampling generator is the checkpoint's average of G
    assert g.keys() == b['ema'].keys() and all(torch.equal(g[k], b['ema'][k]) for k in g)


def folder_flags(folder) -> list:
    return ['--data', str(folder)] + TINY


@pytest.fixture(scope='module')
def baseline(train, tmp_path_factory):
    "The uninterrupted run on the digits that every digits scenario must end up equal to."
    out = tmp_path_factory.mktemp('faults')/'baseline'
    ok(train(TINY + ['--out', out]))
    assert epochs(out) == EPOCHS
    return out


# ------------------------------------------------------------------------------------------------------------ kill -9
@pytest.mark.parametrize('point', KILL_POINTS, ids=[p['id'] for p in KILL_POINTS])
def test_kill_then_resume_is_exact(point, train, baseline, tmp_path, request):
    cache = Path(os.environ['DCGAN_CACHE'])
    if point['data'] == 'folder':
        flags = folder_flags(request.getfixturevalue('digits_folder'))
        base = tmp_path/'baseline'
        ok(train(flags + ['--out', base]))
        assert cache_files(cache)[0], 'the run on a folder wrote no decode cache'
        shutil.rmtree(cache)      # the killed run decodes the images itself, and writes the cache
    else: flags, base = TINY, baseline
    out = tmp_path/'run'
    for i, st in enumerate(point['stages']):
        if st.get('clear_cache'):
            assert cache_files(cache)[0], 'the first run wrote no decode cache'
            shutil.rmtree(cache)
        fault = _cache_write(cache) if st['fault'] == 'cache-write' else st['fault']
        r = train((['--out', out, '--resume'] if st.get('resume') else flags + ['--out', out]), fault)
        assert r['rc'] == -9, f"stage {i}: not killed at {fault['hook']} (exit {r['rc']}):\n{r['stderr'][-3000:]}"
        assert [e['hook'] for e in r['fired']] == [fault['hook']] and r['fired'][0]['pid'] == r['pid']
        # the state the kill left: the old checkpoint loads, the metrics rows written so far, the writer's temp file
        if st['ck_epoch'] is None: assert not (out/'checkpoint.pth').exists()
        else: assert load_ck(out/'checkpoint.pth')['epoch'] == st['ck_epoch']
        if st['rows'] is None: assert not (out/'metrics.csv').exists()
        else: assert epochs(out) == st['rows']
        tmp = [p.name for p in out.glob('.checkpoint.pth.*.tmp')]
        assert tmp == ([f".checkpoint.pth.{r['pid']}.tmp"] if st['ck_tmp'] else []), tmp
        if st.get('cache_tmp'):
            done, tmps = cache_files(cache)
            assert done == [] and tmps, f'expected a half-written decode cache, found {done} and {tmps}'
            assert all(f".{r['pid']}." in p.name for p in tmps), tmps
    if point.get('recover') == 'rerun': ok(train(flags + ['--out', out]))       # nothing to resume: the same command
    else: assert 'resuming' in ok(train(['--out', out, '--resume']))['stdout']
    assert_finished_like(out, base)
    if point['data'] == 'folder':
        done, _ = cache_files(cache)
        assert done and all('images' in torch.load(p, weights_only=True) for p in done if p.suffix == '.pt')


# -------------------------------------------------------------------------------------------------------- disk faults
def _ok_cmd(*cmd) -> bool:
    try: return subprocess.run([str(c) for c in cmd], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired): return False


def _can_mount() -> bool:
    return os.geteuid() == 0 and shutil.which('mount') is not None and not os.environ.get('DCGAN_FAULTS_INJECT')


def _chmod_stops_writes(where:Path) -> bool:
    "Whether a folder without write permission refuses new files here (not for root, whom permissions do not stop)."
    if os.environ.get('DCGAN_FAULTS_INJECT'): return False
    probe = where/'probe'; probe.mkdir(); probe.chmod(0o555)
    try: (probe/'x').touch()
    except PermissionError: return True
    finally: probe.chmod(0o755); shutil.rmtree(probe)
    return False


def _make_fault(kind:dict, where:Path, stack:ExitStack) -> tuple:
    "(run folder, the fault at epoch 2's checkpoint, what undoes it, 'real' or 'injected') for disk fault `kind`."
    at_ck = AT_CK_OPEN              # the fault is made just before epoch 2's checkpoint file is opened
    inject = dict(AT_CK_OPEN, sticky=True, action='raise', errno=kind['errno'], at=kind['at'])
    real, disk = kind['real'], where/'disk'
    disk.mkdir()
    out = disk/'run'
    if real == 'fsize':
        return out, dict(at_ck, action='fsize', fsize=64 * 1024), (lambda: None), 'real'
    if real == 'tmpfs' and _can_mount() and _ok_cmd('mount', '-t', 'tmpfs', '-o', 'size=8m', 'dcgan_faults', disk):
        stack.callback(_ok_cmd, 'umount', '-l', disk)
        filler = disk/'filler'
        return out, dict(at_ck, action='fill', path=str(filler)), (lambda: filler.unlink()), 'real'
    if real == 'ro-bind' and _can_mount() and _ok_cmd('mount', '--bind', '-o', 'ro', disk, disk) \
            and _ok_cmd('umount', disk):
        # a read-only view of the folder mounted over it: files the run has open stay writable, new opens are refused
        stack.callback(_ok_cmd, 'umount', '-l', disk)        # if a failure left it mounted ("not mounted" is harmless)
        ro = dict(at_ck, action='shell', argv=['mount', '--bind', '-o', 'ro', str(disk), str(disk)])
        return out, ro, (lambda: _ok_cmd('umount', disk)), 'real'
    if real == 'chmod' and _chmod_stops_writes(where):
        stack.callback(lambda: out.exists() and os.chmod(out, 0o755))
        shut = dict(at_ck, action='shell', argv=['chmod', 'a-w', str(out)])
        return out, shut, (lambda: os.chmod(out, 0o755)), 'real'
    return out, inject, (lambda: None), 'injected'


@pytest.mark.parametrize('kind', CHECKPOINT_FAULTS, ids=[k['id'] for k in CHECKPOINT_FAULTS])
def test_disk_fault_at_a_checkpoint_is_one_line_and_resumable(kind, train, baseline, tmp_path):
    with ExitStack() as stack:
        out, fault, undo, how = _make_fault(kind, tmp_path, stack)
        print(f"{kind['id']}: {how}")      # shown with pytest -rA
        r = train(TINY + ['--out', out], fault)
        assert r['fired'], f"the {how} fault never struck (exit status {r['rc']})"
        assert r['rc'] > 0, f"exit status {r['rc']}:\n{r['stderr'][-3000:]}"
        lines = r['stderr'].strip().splitlines()
        assert len(lines) == 1 and 'Traceback' not in r['stderr'], f"{how}: not one line:\n{r['stderr'][-3000:]}"
        m = re.fullmatch(r'dcgan_train: error: cannot write (.+?): (.+)', lines[0])
        assert m, lines[0]
        assert Path(m[1]) in (out/'checkpoint.pth', (out/'checkpoint.pth').resolve()), lines[0]
        assert os.strerror(kind['errno']) in m[2], lines[0]
        # the last good checkpoint is there, whole, and nothing half-written beside it
        assert load_ck(out/'checkpoint.pth')['epoch'] == 1
        assert not list(out.glob('.checkpoint.pth.*.tmp'))
        undo()
        ok(train(['--out', out, '--resume']))
        assert_finished_like(out, baseline)


def _fill(path:Path):
    "Grow `path` until its file system is full."
    with open(path, 'ab', buffering=0) as f:
        for n in (1 << 20, 4096, 1):
            try:
                while True: f.write(b'\0' * n)
            except OSError as e:
                if e.errno != errno.ENOSPC: raise


def test_full_disk_at_the_decode_cache_trains_on(train, tmp_path, digits_folder, monkeypatch):
    "A decode cache that cannot be written is no reason to stop: the run says so in one line and decodes in memory."
    flags = folder_flags(digits_folder)
    ok(train(flags + ['--out', tmp_path/'baseline']))
    cache, fault, how = tmp_path/'cachefs', None, 'injected'
    cache.mkdir()
    if _can_mount() and _ok_cmd('mount', '-t', 'tmpfs', '-o', 'size=1m', 'dcgan_faults', cache):
        how = 'real'
        _fill(cache/'filler')
    else: fault = dict(hook='open', name=r'^\.?images-', under=str(cache), sticky=True, action='raise',
                       errno=errno.ENOSPC, at='write')
    print(f'cache-disk-full: {how}')
    try:
        monkeypatch.setenv('DCGAN_CACHE', str(cache))
        r = ok(train(flags + ['--out', tmp_path/'run'], fault))
        assert fault is None or r['fired'], 'the injected fault never struck'
        lines = r['stderr'].strip().splitlines()
        assert len(lines) == 1 and 'Traceback' not in r['stderr'], r['stderr'][-3000:]
        assert 'cache' in lines[0] and os.strerror(errno.ENOSPC) in lines[0], lines[0]
        assert cache_files(cache) == ([cache/'filler'] if how == 'real' else [], [])
    finally:
        if how == 'real': _ok_cmd('umount', '-l', cache)
    assert_same_nets(load_ck(tmp_path/'baseline'/'checkpoint.pth'), load_ck(tmp_path/'run'/'checkpoint.pth'))


def test_corrupt_decode_cache_is_moved_aside_and_rebuilt(train, tmp_path, digits_folder):
    flags, cache = folder_flags(digits_folder), Path(os.environ['DCGAN_CACHE'])
    ok(train(flags + ['--out', tmp_path/'baseline']))
    done, _ = cache_files(cache)
    assert done, 'no decode cache was written'
    cut = {}
    for p in done:
        data = p.read_bytes(); p.write_bytes(data[:len(data) // 2]); cut[p] = data[:len(data) // 2]
    r = ok(train(flags + ['--out', tmp_path/'run']))
    lines = r['stderr'].strip().splitlines()
    assert len(lines) == 1 and 'Traceback' not in r['stderr'], r['stderr'][-3000:]
    assert all(str(p) in lines[0] for p in cut), lines[0]       # it names the damaged file
    a, b = load_ck(tmp_path/'baseline'/'checkpoint.pth'), load_ck(tmp_path/'run'/'checkpoint.pth')
    assert_same_nets(a, b)
    for p, bad in cut.items():
        if p.suffix == '.pt': assert 'images' in torch.load(p, weights_only=True), f'{p} was not rebuilt'
        else: assert p.read_bytes() != bad, f'{p} was not rebuilt'
        aside = [q for q in cache.rglob('*') if q.is_file() and q != p and q.read_bytes() == bad]
        assert aside, f'the corrupt {p.name} was not kept aside'


# -------------------------------------------------------------------------------------------------------- bad recipes
@pytest.fixture(scope='module')
def recipe_run(train, tmp_path_factory):
    "A run folder killed in epoch 2 (its checkpoint: epoch 1 of 3) whose recipe.json the recipe tests copy and edit."
    out = tmp_path_factory.mktemp('recipes')/'run'
    assert train(TINY + ['--out', out], MID_BATCH)['rc'] == -9
    return out


def _edited(run:Path, field:str, raw:str) -> str:
    d = json.loads((run/'recipe.json').read_text())
    assert field in d, f'recipe.json has no field {field!r}'
    d[field] = '@BAD@'
    return json.dumps(d, indent=1).replace('"@BAD@"', raw)


def _names(line:str, field:str) -> bool:
    "Whether `line` names recipe field `field` (as `field`, `field-name` or `--field-name`)."
    names = {field, field.replace('_', '-')}
    return any(re.search(rf'(?:^|[^\w-])(?:--)?{re.escape(a)}(?![\w-])', line) for a in names)


def _by_route(train, recipe_run, tmp_path, route, text):
    "Run `dcgan_train` on the recipe `text` by `route`: (the outcome, the run folder, the files that must not change)."
    if route == 'config':
        f = tmp_path/'edited.json'; f.write_text(text)
        out = tmp_path/'new'
        return train(['--config', f, '--out', out]), out, {}
    out = tmp_path/'run'
    shutil.copytree(recipe_run, out)
    (out/'recipe.json').write_text(text)
    keep = {p: p.read_bytes() for p in (out/'recipe.json', out/'checkpoint.pth', out/'metrics.csv')}
    return train(['--out', out, '--resume']), out, keep


@pytest.mark.parametrize('route', RECIPE_ROUTES)
@pytest.mark.parametrize('field,raw', BAD_RECIPES, ids=[f'{f}={v}' for f, v in BAD_RECIPES])
def test_hand_edited_recipe_of_the_wrong_type_is_refused(field, raw, route, train, recipe_run, tmp_path):
    r, out, keep = _by_route(train, recipe_run, tmp_path, route, _edited(recipe_run, field, raw))
    err = r['stderr'].strip()
    assert r['rc'] == 2, f"{field}={raw} via {route}: exit status {r['rc']}:\n{err[-3000:]}"
    assert len(err.splitlines()) == 1 and 'Traceback' not in err, err[-3000:]
    assert _names(err.replace(str(tmp_path), '<tmp>'), field), f'the message does not name {field!r}: {err}'
    assert not re.search(r'^epoch \d+/', r['stdout'], re.M), 'it trained'
    if route == 'config': assert not (out/'checkpoint.pth').exists()
    for p, data in keep.items(): assert p.read_bytes() == data, f'{p.name} changed'


@pytest.mark.parametrize('route', RECIPE_ROUTES)
def test_unedited_recipe_is_accepted_both_ways(route, train, recipe_run, tmp_path):
    "The control for the test above: the same copy and the same commands, the recipe left as it was: they train."
    r, out, _ = _by_route(train, recipe_run, tmp_path, route, (recipe_run/'recipe.json').read_text())
    ok(r)
    assert re.findall(r'^epoch (\d+)/', r['stdout'], re.M) == (EPOCHS if route == 'config' else ['2', '3'])
    assert load_ck(out/'checkpoint.pth')['epoch'] == 3 and epochs(out) == EPOCHS
