"The package's shape: imports go one way, private names stay home, `dcgan_course.all` shadows nothing, short lines and docstrings."
import ast, importlib, inspect, warnings
from pathlib import Path
import pytest
import dcgan_course

PKG = Path(dcgan_course.__file__).parent
SKIP = ('_modidx.py',)


def sources(pkg: Path = PKG) -> dict:
    "Module name -> parsed source, for every module of the package at `pkg`."
    return {p.stem: ast.parse(p.read_text()) for p in sorted(pkg.glob('*.py')) if p.name not in SKIP}


def _target(node: ast.ImportFrom, pkg_name: str):
    "The package module an `from X import ...` names (relative or absolute), or None for other packages."
    if node.level == 1: return node.module or '__init__'
    if node.module and node.module.startswith(pkg_name + '.'): return node.module.split('.')[1]
    return None


def imports(trees: dict, pkg_name: str = 'dcgan_course') -> dict:
    "Module -> {(imported module, name)} for every import of the package's own modules, at the top or inside functions."
    out = {m: set() for m in trees}
    for m, tree in trees.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (t := _target(node, pkg_name)) is not None:
                out[m] |= {(t, a.name) for a in node.names}
            elif isinstance(node, ast.Import):
                out[m] |= {(a.name.split('.')[1], None) for a in node.names if a.name.startswith(pkg_name + '.')}
    return out


def cycles(deps: dict) -> list:
    "Every import cycle among the modules, as a list of module names (empty: imports go one way)."
    graph = {m: {t for t, _ in v if t != m and t in deps} for m, v in deps.items()}
    found, state = [], {}
    def visit(m, path):
        state[m] = 'open'
        for t in sorted(graph[m]):
            if state.get(t) == 'open': found.append(path[path.index(t):] + [t])
            elif t not in state: visit(t, path + [t])
        state[m] = 'done'
    for m in sorted(graph):
        if m not in state: visit(m, [m])
    return found


def private_crossings(deps: dict) -> list:
    "`module <- other._name`: private names one module imports from another."
    return sorted(f'{m} <- {t}.{n}' for m, v in deps.items() for t, n in v
                  if n and n.startswith('_') and not n.startswith('__') and t != m)


def test_no_import_cycle():
    assert cycles(imports(sources())) == []


def test_no_private_name_crosses_modules():
    assert private_crossings(imports(sources())) == []


def test_the_checks_see_a_cycle_and_a_private_import(tmp_path):
    (tmp_path/'a.py').write_text('from .b import _helper\n')
    (tmp_path/'b.py').write_text('def f():\n    from pkg.a import x\n')
    deps = imports(sources(tmp_path), 'pkg')
    assert cycles(deps) == [['a', 'b', 'a']]
    assert private_crossings(deps) == ['a <- b._helper']
    assert [i for i, _ in code_lines("__all__ = ['a',\n           'b']\nx = 1\n")] == [3]


def test_all_shadows_nothing():
    "Under `from dcgan_course.all import *`, each public name means one thing: no module's name hides another's."
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        all_mod = importlib.import_module('dcgan_course.all')
        owners = {}
        for m in all_mod.MODULES:
            mod = importlib.import_module(f'dcgan_course.{m}')
            for n in mod.__all__: owners.setdefault(n, {})[m] = getattr(mod, n)
    clashes = {n: sorted(v) for n, v in owners.items() if len({id(o) for o in v.values()}) > 1}
    assert clashes == {}


def code_lines(text: str):
    "(number, line) for each line we wrote: nbdev's generated `__all__` list (it wraps it at its own width) is left out."
    in_all = False
    for i, line in enumerate(text.splitlines(), 1):
        if line.startswith('__all__ = ['): in_all = True
        if not in_all: yield i, line
        if in_all and line.rstrip().endswith(']'): in_all = False


def test_lines_are_at_most_120_characters():
    long = [f'{p.name}:{i}' for p in sorted(PKG.glob('*.py')) if p.name not in SKIP
            for i, line in code_lines(p.read_text()) if len(line) > 120]
    assert long == [], f'{len(long)} lines over 120 characters: ' + ', '.join(long[:20])


def test_docstrings_are_one_line():
    "Public functions, classes and methods have a one-line docstring (detail goes in docments and the notebooks)."
    multi = []
    for m, tree in sources().items():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith('_'):
                doc = ast.get_docstring(node, clean=False)
                if doc and ('\n' in doc.strip() or len(doc) > 120): multi.append(f'{m}.{node.name}')
    assert multi == [], 'docstrings over one line or 120 characters: ' + ', '.join(multi)
