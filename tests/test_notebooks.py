"Every notebook opens in Colab, installs the library there (and only there), and holds no output made by code that is gone."
import json
from pathlib import Path
import pytest

NBS = sorted(p for p in (Path(__file__).parents[1]/'nbs').glob('*.ipynb') if p.name not in ('index.ipynb', 'seeds.ipynb'))


def cells(p): return json.loads(p.read_text())['cells']
def source(c): return ''.join(c['source'])


@pytest.mark.parametrize('nb', NBS, ids=lambda p: p.name)
def test_opens_in_colab(nb):
    cs = cells(nb)
    badge = [c for c in cs if c['cell_type'] == 'markdown' and 'colab-badge.svg' in source(c)]
    assert badge and f'/blob/main/nbs/{nb.name})' in source(badge[0]), 'no Open-in-Colab badge linking this notebook'
    install = [c for c in cs if c['cell_type'] == 'code' and '[ -e /content ] && pip install' in source(c)]
    assert install and source(install[0]).startswith('#| hide'), 'no hidden Colab-only install cell'
    assert cs.index(install[0]) < min(i for i, c in enumerate(cs) if c['cell_type'] == 'code' and 'import' in source(c) and c is not install[0])


@pytest.mark.parametrize('nb', NBS, ids=lambda p: p.name)
def test_no_stale_explorer_output(nb):
    "The explorer once printed as a bare ipywidgets VBox; today it prints `LatentExplorer(...)`: an old repr means an old run."
    for c in cells(nb):
        for o in c.get('outputs', []):
            text = ''.join(o.get('text', '')) + ''.join(o.get('data', {}).get('text/plain', ''))
            assert "VBox(children=(Image(value=b'" not in text, f'{nb.name} holds output from an older explore.py: re-run it'


@pytest.mark.parametrize('nb', NBS, ids=lambda p: p.name)
def test_no_unfinished_progress_bar(nb):
    """Jupyter redraws fastprogress's bar in one place; a notebook run outside Jupyter can save every redraw as a new output (the labs
    once held 700 a cell, 100 MB in all). A saved notebook shows each training table once, finished."""
    for i, c in enumerate(cells(nb)):
        for o in c.get('outputs', []):
            html = ''.join(o.get('data', {}).get('text/html', ''))
            assert '<progress' not in html, f'{nb.name}, cell {i}: a half-drawn progress bar was saved: keep only the last redraw of each bar'


LESSONS = [p for p in NBS if p.name[:2].isdigit() and int(p.name[:2]) <= 12 and p.name != '00_package.ipynb']


@pytest.mark.parametrize('nb', LESSONS, ids=lambda p: p.name)
def test_every_lesson_shows_a_picture(nb):
    "A lesson teaches with a picture its own cells made: a saved PNG output (`00_package`, two lines of setup, is not a lesson)."
    pngs = [o for c in cells(nb) for o in c.get('outputs', []) if 'image/png' in o.get('data', {})]
    assert pngs, f'{nb.name} saves no picture: show what the lesson builds, and run the notebook to save it'
