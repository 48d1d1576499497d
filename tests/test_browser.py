"""JupyterLab in a real browser (headless Chromium driven by selenium): the explorer fits a 1366x768 screen, answers its
slider and shows bad input in its own message line, without a JavaScript error; a saved lab shows its explorer as a
picture; and a notebook opened and saved in JupyterLab stays byte for byte what the repository holds.

Needs Chromium, its driver, JupyterLab and selenium: `.ci/run` installs them (apt-get install chromium chromium-driver;
pip install jupyterlab selenium -c constraints.txt). When one is missing, every test here fails and says which."""
import configparser, difflib, json, os, re, secrets, shutil, socket, subprocess, sys, time, urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
CHROMIUM, CHROMEDRIVER = Path('/usr/bin/chromium'), Path('/usr/bin/chromedriver')
W, H = 1366, 768                                          # a common laptop screen
INSTALL = ("apt-get install -y chromium chromium-driver; pip install jupyterlab selenium -c constraints.txt "
           "(.ci/run does both)")

# Tiny generators, 96 steps on the digits (no moving average: they must have left their start), and their explorers
EXPLORER_NB = [
    "from dcgan_course.recipe import recipe_learner, RECIPES\n"
    "r = RECIPES['digits'].replace(size=16, nf=8, nz=8, bs=32, epochs=3, max_items=1024, ema=None, monitor=False)\n"
    "learn = recipe_learner(r)\nlearn.fit(r.epochs)",
    "from dcgan_course.explore import latent_explorer\nlatent_explorer(learn)",
    "rc = r.replace(conditional=True)\nlearn_c = recipe_learner(rc)\nlearn_c.fit(rc.epochs)\n"
    "latent_explorer(learn_c)                # one more row of controls: the class buttons",
]
N_PANELS = 2


def _missing() -> list:
    "What this module needs and the machine lacks."
    miss = [f'{p} (Debian package {n})' for p, n in ((CHROMIUM, 'chromium'), (CHROMEDRIVER, 'chromium-driver'))
            if not os.access(p, os.X_OK)]
    for mod, pkg in (('selenium', 'selenium'), ('jupyterlab', 'jupyterlab'), ('nbformat', 'nbformat')):
        try: __import__(mod)
        except ImportError: miss.append(f'Python package {pkg}')
    return miss


@pytest.fixture(scope='module')
def tools():
    "Fail (never skip) without the browser, its driver or JupyterLab: a browser test that did not run has not passed."
    miss = _missing()
    if miss: pytest.fail(f"browser test cannot run: missing {', '.join(miss)}; install with: {INSTALL}", pytrace=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _wait(cond, timeout:float, what:str, every:float=0.25):
    "Poll `cond()` until it returns something truthy, at most `timeout` seconds; fail naming `what` otherwise."
    end = time.monotonic() + timeout
    while True:
        v = cond()
        if v: return v
        if time.monotonic() > end: pytest.fail(f'timed out after {timeout:.0f} s waiting for {what}', pytrace=False)
        time.sleep(every)


class Lab:
    "A JupyterLab server on 127.0.0.1 (random port and token) serving a temporary folder, and headless Chromium on it."
    def __init__(self, tmp:Path):
        self.tmp, self.root = tmp, tmp/'root'
        self.root.mkdir()
        self.port, self.token = _free_port(), secrets.token_hex(16)
        self.url = f'http://127.0.0.1:{self.port}'
        self.log, self.proc, self.driver, self.console, self.opened = tmp/'server.log', None, None, [], 0

    def start_server(self):
        env = dict(os.environ, OMP_NUM_THREADS='1', MPLBACKEND='Agg', DCGAN_CACHE=str(self.tmp/'cache'),
                   PYTHONWARNINGS='ignore')
        for var, d in (('JUPYTER_CONFIG_DIR', 'config'), ('JUPYTER_DATA_DIR', 'data'),
                       ('JUPYTER_RUNTIME_DIR', 'runtime'), ('JUPYTERLAB_SETTINGS_DIR', 'settings'),
                       ('JUPYTERLAB_WORKSPACES_DIR', 'workspaces'), ('IPYTHONDIR', 'ipython')):
            env[var] = str(self.tmp/d)                     # nothing read from, or written to, the user's folders
        # no internet here: JupyterLab's news and update checks would only log failed requests
        s = self.tmp/'settings'/'@jupyterlab'/'apputils-extension'/'notification.jupyterlab-settings'
        s.parent.mkdir(parents=True)
        s.write_text(json.dumps({'fetchNews': 'false', 'checkForUpdates': False}))
        # nbdev's save hook, as `nbdev_install_hooks` writes it into ~/.jupyter: each save of a notebook in an nbdev
        # project goes through `nbdev_clean` when its settings.ini says `jupyter_hooks = True` (a no-op elsewhere).
        # nbdev looks for settings.ini from the server's working folder up: the served folder is laid out as a clone.
        from nbdev.clean import _pre_save_hook_src
        (self.tmp/'config').mkdir()
        (self.tmp/'config'/'jupyter_server_config.py').write_text(_pre_save_hook_src + '\n')
        shutil.copy(ROOT/'settings.ini', self.root/'settings.ini')
        (self.root/'nbs').mkdir()
        cmd = [sys.executable, '-m', 'jupyter', 'lab', '--no-browser', '--ServerApp.ip=127.0.0.1',
               f'--ServerApp.port={self.port}', '--ServerApp.port_retries=0', f'--IdentityProvider.token={self.token}',
               f'--ServerApp.root_dir={self.root}', '--ServerApp.allow_root=True',
               '--ServerApp.terminals_enabled=False',
               '--LabApp.expose_app_in_browser=True']        # window.jupyterapp: to find cells and the kernel's state
        self.proc = subprocess.Popen(cmd, cwd=self.root, env=env, stdout=self.log.open('wb'), stderr=subprocess.STDOUT,
                                     start_new_session=True)
        def up():
            if self.proc.poll() is not None:
                pytest.fail(f'jupyter lab exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}',
                            pytrace=False)
            try: return self.api('GET', '/api/status') is not None
            except OSError: return False
        _wait(up, 90, 'jupyter lab to answer on 127.0.0.1')

    def api(self, method:str, path:str):
        req = urllib.request.Request(self.url + path, method=method, headers={'Authorization': f'token {self.token}'})
        with urllib.request.urlopen(req, timeout=5) as r:
            body = r.read()
        return json.loads(body) if body else {}

    def start_browser(self):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        opts = webdriver.ChromeOptions()
        opts.binary_location = str(CHROMIUM)
        for a in ('--headless=new', '--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu',
                  f'--window-size={W},{H}', '--no-first-run', '--disable-extensions', '--disable-background-networking',
                  f'--user-data-dir={self.tmp/"chrome"}'):
            opts.add_argument(a)
        opts.set_capability('goog:loggingPrefs', {'browser': 'ALL'})
        service = Service(str(CHROMEDRIVER), log_output=str(self.tmp/'chromedriver.log'))   # Debian's, no download
        self.driver = webdriver.Chrome(service=service, options=opts)
        self.driver.set_page_load_timeout(90)
        self.driver.set_script_timeout(60)
        # the page itself is exactly 1366x768, the window's own frame aside
        self.driver.execute_cdp_cmd('Emulation.setDeviceMetricsOverride',
                                    dict(width=W, height=H, deviceScaleFactor=1, mobile=False))

    def stop(self):
        if self.driver is not None:
            try: self.driver.quit()
            except Exception: pass
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)                   # the server and the kernels it started
            try: self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9); self.proc.wait(5)

    def js(self, script:str, *args): return self.driver.execute_script(script, *args)

    def collect_console(self) -> list:
        "The browser's console messages so far (Chromium hands each out once), kept for `test_no_javascript_errors`."
        self.console += self.driver.get_log('browser')
        return self.console

    def open(self, name:str, timeout:float=90):
        "Open `name` (in the served folder) in JupyterLab; wait until the notebook is loaded and its kernel is idle."
        self.collect_console()
        self.opened += 1                                   # a new workspace: no tab of an earlier test comes back
        self.driver.get(f'{self.url}/lab/workspaces/test{self.opened}/tree/{name}?token={self.token}')
        ready = """const cb = arguments[arguments.length - 1];
            const app = window.jupyterapp;
            if (!app || !app.shell) return cb(false);
            const w = app.shell.currentWidget;
            if (!w || !w.context || !w.sessionContext || w.context.path !== arguments[0]) return cb(false);
            w.context.ready.then(() => w.sessionContext.ready).then(() => {
                const k = w.sessionContext.session && w.sessionContext.session.kernel;
                cb(!!k && k.status === 'idle' && w.content.widgets.length > 0);
            }, () => cb(false));"""
        _wait(lambda: self.driver.execute_async_script(ready, name), timeout,
              f'JupyterLab to open {name} with an idle kernel', 0.5)

    def close_all(self):
        "Leave the page and shut every kernel down, so that the next notebook starts on an idle machine."
        self.collect_console()
        self.driver.get('about:blank')
        for k in self.api('GET', '/api/kernels'): self.api('DELETE', f"/api/kernels/{k['id']}")


@pytest.fixture(scope='module')
def lab(tools, tmp_path_factory):
    lab = Lab(tmp_path_factory.mktemp('lab'))
    try:
        lab.start_server()
        lab.start_browser()
        yield lab
    finally: lab.stop()


def _new_notebook(path:Path, sources):
    import nbformat
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    nb.metadata['kernelspec'] = {'name': 'python3', 'display_name': 'python3', 'language': 'python'}
    nbformat.write(nb, path)


def _output_text(lab) -> str:
    "What the notebook's outputs say (for a failure message): its last 1500 characters."
    js = "return [...document.querySelectorAll('.jp-OutputArea-output')].map(e => e.innerText).join('\\n')"
    return (lab.js(js) or '')[-1500:]


PANEL = '.dcgan-explorer'


@pytest.fixture(scope='module')
def explorer(lab):
    "The explorer notebook opened in JupyterLab and run from its menu (Run > Run All Cells); gives the failure, if any."
    _new_notebook(lab.root/'explorer.ipynb', EXPLORER_NB)
    lab.open('explorer.ipynb')
    t0 = time.monotonic()
    lab.driver.find_element('xpath', "//div[contains(@class,'lm-MenuBar-itemLabel') and text()='Run']").click()
    _wait(lambda: lab.driver.find_elements('css selector', "li.lm-Menu-item[data-command='runmenu:run-all']"), 10,
          'the Run menu to open')[0].click()
    done = f"""
        if (document.querySelectorAll('{PANEL} .dcgan-explorer-image').length >= {N_PANELS}) return 'panel';
        const err = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"] .ansi-red-fg';
        if (document.querySelector(err)) return 'error';              // a traceback: Run All stops there
        const p = [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')].map(e => e.textContent.trim());
        return p.length && p.every(s => /^\\[\\d+\\]:$/.test(s)) ? 'finished' : null;"""
    how = _wait(lambda: lab.js(done), 180, 'the explorer notebook to run', 0.5)
    count = f"return document.querySelectorAll('{PANEL} .dcgan-explorer-image').length"
    if how != 'panel':                                     # the last cell's output may still be on its way
        time.sleep(3)
        if lab.js(count) >= N_PANELS: how = 'panel'
    print(f'explorer notebook ran in {time.monotonic() - t0:.1f} s ({how})')
    yield None if how == 'panel' else (f"{lab.js(count)} of {N_PANELS} '{PANEL}' panels with a '.dcgan-explorer-image' "
                                       f"after Run All Cells ({how}); the outputs read:\n{_output_text(lab)}")
    lab.close_all()


def _need(failure):
    if failure: pytest.fail(failure, pytrace=False)


RECTS = f"""
    const panel = document.querySelectorAll('{PANEL}')[arguments[0]];
    panel.scrollIntoView({{block: 'start'}});
    const box = panel.closest('.jp-WindowedPanel-outer') || panel.closest('.jp-Notebook');
    const r = e => {{ const b = e.getBoundingClientRect(); return [b.left, b.top, b.right, b.bottom]; }};
    return {{panel: r(panel), box: r(box), view: [0, 0, window.innerWidth, window.innerHeight],
            parts: [...panel.querySelectorAll('.dcgan-explorer-image, .dcgan-explorer-control')].map(e =>
                [e.classList.contains('dcgan-explorer-image') ? 'image' : 'control',
                 (e.innerText || e.tagName).trim().slice(0, 30), r(e),
                 !!e.querySelector('.noUi-target, .widget-slider'), !!e.querySelector('input[type=number]')])}};"""


@pytest.mark.parametrize('which', range(N_PANELS), ids=['unconditional', 'classes'])
def test_explorer_fits_one_screen(lab, explorer, which):
    "Image and every control in view at once, on a 1366x768 screen: no scrolling between the slider and what it does."
    _need(explorer)
    lab.js(RECTS, which)
    time.sleep(0.5)                                        # let the scroll settle, then measure
    g = lab.js(RECTS, which)
    assert g['view'] == [0, 0, W, H], f"the page is {g['view'][2]}x{g['view'][3]}, not {W}x{H}"
    kinds = [p[0] for p in g['parts']]
    assert kinds.count('image') == 1, f'one .dcgan-explorer-image expected, found {kinds.count("image")}'
    assert any(p[3] for p in g['parts']), 'no slider among the .dcgan-explorer-control elements'
    assert any(p[4] for p in g['parts']), 'no seed box (a number input) among the .dcgan-explorer-control elements'
    (l, t, rr, b), box = g['panel'], g['box']
    assert b - t <= box[3] - box[1], f'the panel is {b - t:.0f} px high; the notebook shows {box[3] - box[1]:.0f} px'
    vis = [max(box[0], 0), max(box[1], 0), min(box[2], W), min(box[3], H)]   # the notebook's visible area
    out = [f'{k} {name!r} at {[round(x) for x in rect]}' for k, name, rect, *_ in g['parts']
           if rect[2] - rect[0] <= 0 or rect[3] - rect[1] <= 0 or
           rect[0] < vis[0] - 1 or rect[1] < vis[1] - 1 or rect[2] > vis[2] + 1 or rect[3] > vis[3] + 1]
    assert not out, f'outside the visible notebook area {[round(x) for x in vis]} (or empty): ' + '; '.join(out)


IMG_HASH = """const cb = arguments[arguments.length - 1];
    fetch(arguments[0]).then(r => r.arrayBuffer()).then(b => crypto.subtle.digest('SHA-256', b))
        .then(d => cb(Array.from(new Uint8Array(d)).join(',')), e => cb('unreadable: ' + e));"""


def test_slider_changes_image(lab, explorer):
    "ArrowRight on a focused slider handle: within a second the image shows a different picture."
    _need(explorer)
    from selenium.webdriver.common.keys import Keys
    img = lab.driver.find_element('css selector', f'{PANEL} .dcgan-explorer-image')
    handles = lab.driver.find_elements('css selector', f'{PANEL} .dcgan-explorer-control .noUi-handle')
    assert handles, 'no slider handle (.noUi-handle) in the .dcgan-explorer-control elements'
    lab.js("arguments[0].scrollIntoView({block: 'center'});", handles[0])
    before = img.get_attribute('src')
    h0 = lab.driver.execute_async_script(IMG_HASH, before)
    t0 = time.monotonic()
    handles[0].send_keys(Keys.ARROW_RIGHT)
    after = _wait(lambda: (s if (s := img.get_attribute('src')) != before else None), 1.0,
                  'the image to change after ArrowRight', 0.02)
    print(f'image changed {time.monotonic() - t0:.2f} s after the key')
    h1 = lab.driver.execute_async_script(IMG_HASH, after)
    assert not h0.startswith('unreadable') and not h1.startswith('unreadable'), (h0, h1)
    assert h0 != h1, 'the image was redrawn with the same picture'


def test_bad_seed_shows_message(lab, explorer):
    "A seed too large for torch's generator: the panel's message line says so (the error does not vanish in a log)."
    _need(explorer)
    from selenium.webdriver.common.keys import Keys
    msg = lab.driver.find_elements('css selector', f'{PANEL} .dcgan-explorer-message')
    assert msg, 'no .dcgan-explorer-message line in the panel'
    seeds = lab.driver.find_elements('css selector', f'{PANEL} .dcgan-explorer-control input[type=number]')
    assert seeds, 'no seed box (a number input) in the .dcgan-explorer-control elements'
    before = msg[0].get_attribute('textContent').strip()
    lab.js("arguments[0].scrollIntoView({block: 'center'});", seeds[0])
    seeds[0].click()
    seeds[0].send_keys(Keys.CONTROL, 'a')
    seeds[0].send_keys('99999999999999999999', Keys.ENTER)
    text = _wait(lambda: (t if (t := msg[0].get_attribute('textContent').strip()) and t != before else None), 5,
                 'a message in .dcgan-explorer-message after the seed 99999999999999999999')
    print('message:', text)


def _offline(message:str) -> bool:
    "An image from the internet that a saved notebook's markdown links (its Colab badge) failing to load on an offline machine."
    return bool(re.match(r'https?://(?!127\.0\.0\.1[:/])\S+ - Failed to load resource: net::ERR_(NAME_NOT_RESOLVED|INTERNET_DISCONNECTED|'
                         r'CONNECTION_REFUSED|ADDRESS_UNREACHABLE)$', message))

def _errors(logs) -> list:
    """The console's errors (level SEVERE). One thing only is excused: a resource outside 127.0.0.1 that cannot be fetched
    without a network (`_offline`). JupyterLab serves its own icon, makes no request outside 127.0.0.1 once its news and update
    checks are off, and logs nothing at this level when all is well."""
    return [e['message'] for e in logs if e['level'] == 'SEVERE' and not _offline(e['message'])]


def test_no_javascript_errors(lab, explorer):
    "Opening, running and using the explorer leaves no error in the browser's console."
    severe = _errors(lab.collect_console())
    assert not severe, 'errors in the browser console:\n' + '\n'.join(severe[:10])


def _explorer_cell(nb:dict) -> int:
    "The index of the first cell that shows the explorer."
    for i, c in enumerate(nb['cells']):
        src = ''.join(c['source'])
        shown = any('data' in o for o in c.get('outputs', []))
        if c['cell_type'] == 'code' and ('.explore(' in src or 'latent_explorer(' in src) and shown: return i
    raise AssertionError('no cell shows the explorer')


def test_saved_lab_shows_explorer_picture(lab):
    """A lab as saved, opened without running it as in a fresh clone: where the explorer was, a picture of it.
    JupyterLab does not trust a notebook it has not signed, so it shows the output's image/png, not the widget (whose
    model is gone)."""
    src = ROOT/'nbs'/'30_lab_digits.ipynb'
    shutil.copy(src, lab.root/'nbs'/src.name)
    i = _explorer_cell(json.loads(src.read_text()))
    n0 = len(lab.collect_console())
    find = """const w = window.jupyterapp.shell.currentWidget, cell = w.content.widgets[arguments[0]];
        cell.node.scrollIntoView({block: 'start'});
        const img = cell.node.querySelector('.jp-OutputArea-output img');
        return img && img.complete ? [img.naturalWidth, img.naturalHeight, img.width, img.height, img.src.slice(0, 15)]
                                   : null;"""
    try:
        lab.open(f'nbs/{src.name}')
        try: got = _wait(lambda: lab.js(find, i), 15, f'a picture in the explorer output of {src.name} (cell {i})')
        except pytest.fail.Exception:
            text = lab.js("return window.jupyterapp.shell.currentWidget.content.widgets[arguments[0]].node"
                          ".querySelector('.jp-Cell-outputArea').innerText", i)
            pytest.fail(f'{src.name}, cell {i}: the explorer output shows no picture; it reads: {text.strip()[:300]!r}',
                        pytrace=False)
    finally: lab.close_all()
    nw, nh, w, h, prefix = got
    assert prefix == 'data:image/png;', f'the picture is not the saved image/png: {prefix}'
    assert min(nw, nh) >= 100 and min(w, h) >= 100, f'the picture is {nw}x{nh} (shown {w}x{h}): too small for the panel'
    severe = _errors(lab.console[n0:])
    assert not severe, f'errors in the browser console while {src.name} opened:\n' + '\n'.join(severe[:10])


def _nb_diff(a:str, b:str) -> str:
    "Where two notebook files differ: top-level fields and metadata, the cells, then the start of a text diff."
    na, nb = json.loads(a), json.loads(b)
    out = [f'{k}: {na.get(k)!r} -> {nb.get(k)!r}' for k in sorted(set(na) | set(nb))
           if k != 'cells' and na.get(k) != nb.get(k)]
    ca, cb = na['cells'], nb['cells']
    if len(ca) != len(cb): out.append(f'{len(ca)} cells -> {len(cb)}')
    for i, (x, y) in enumerate(zip(ca, cb)):
        keys = sorted(k for k in set(x) | set(y) if x.get(k) != y.get(k))
        if keys: out.append(f'cell {i}: {", ".join(keys)} differ')
    lines = list(difflib.unified_diff(a.splitlines(), b.splitlines(), 'repository', 'saved by JupyterLab', n=1,
                                      lineterm=''))
    return '\n'.join(out + lines[:40])


def test_open_and_save_changes_nothing(lab):
    """Open a notebook of the project in JupyterLab, let its kernel start, save it (Ctrl+S): the file stays byte for
    byte the repository's. JupyterLab writes its kernel's display name and `language_info` into the metadata;
    `nbdev_clean` sets the display name back to the kernel's name and drops `language_info`, so CI's clean notebooks
    survive a save only through nbdev's save hook (`nbdev_install_hooks`), which cleans if `jupyter_hooks = True`."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys
    src = ROOT/'nbs'/'00_core.ipynb'
    dst = lab.root/'nbs'/src.name
    shutil.copy(src, dst)
    mtime = dst.stat().st_mtime_ns
    try:
        lab.open(f'nbs/{src.name}')
        time.sleep(2)                                      # the kernel's info reply updates the notebook's metadata
        lab.js('window.jupyterapp.shell.currentWidget.content.activate()')     # the keyboard's focus in the notebook
        ActionChains(lab.driver).key_down(Keys.CONTROL).send_keys('s').key_up(Keys.CONTROL).perform()
        _wait(lambda: dst.stat().st_mtime_ns != mtime, 20, f'JupyterLab to save {src.name} after Ctrl+S')
        time.sleep(0.5)
    finally: lab.close_all()
    a, b = src.read_text(), dst.read_text()
    cfg = configparser.ConfigParser()
    cfg.read(ROOT/'settings.ini')
    hooks = cfg['DEFAULT'].getboolean('jupyter_hooks', False)
    assert a == b, (f'opening and saving {src.name} in JupyterLab changed it (settings.ini: jupyter_hooks = {hooks}):\n'
                    + _nb_diff(a, b))
