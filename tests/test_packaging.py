"The install story: ranges for users that admit the tested set, and CI installing exactly what the README says."
import ast, configparser, re, sys
from importlib.metadata import packages_distributions
from pathlib import Path
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).parents[1]


def settings():
    cfg = configparser.ConfigParser(delimiters=['=']); cfg.read(ROOT/'settings.ini')
    return cfg['DEFAULT']


def requirements(key):
    return [Requirement(r) for r in settings()[key].split()]


def pins():
    out = {}
    for line in (ROOT/'constraints.txt').read_text().splitlines():
        line = line.split('#')[0].strip()
        if not line: continue
        r = Requirement(line)
        (spec,) = r.specifier
        assert spec.operator == '==', f'constraints.txt pins exact versions: {line}'
        out[canonicalize_name(r.name)] = spec.version
    return out


def test_ranges_admit_the_tested_set():
    p = pins()
    for key in ('requirements', 'dev_requirements', 'tensorboard_requirements'):
        for r in requirements(key):
            name = canonicalize_name(r.name)
            assert name in p, f'{r.name} ({key}) is not pinned in constraints.txt'
            assert r.specifier.contains(p[name], prereleases=True), f'{key}: {r} does not admit the tested {name}=={p[name]}'


def test_torch_is_a_range_not_a_pin():
    for r in requirements('requirements'):
        if r.name in ('torch', 'torchvision'): assert not any(s.operator == '==' for s in r.specifier), r


def test_every_imported_package_is_required():
    "Each third-party module the library imports at module level is covered by a requirement (or comes with one)."
    stdlib = set(sys.stdlib_module_names) | {'__future__'}
    mods = set()
    for f in (ROOT/'dcgan_course').glob('*.py'):
        for node in ast.parse(f.read_text()).body:
            if isinstance(node, ast.Import): mods |= {a.name.split('.')[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0: mods.add(node.module.split('.')[0])
    third = mods - stdlib - {'dcgan_course'}
    dists = packages_distributions()
    required = {canonicalize_name(r.name) for r in requirements('requirements')}
    for m in sorted(third):
        names = {canonicalize_name(d) for d in dists.get(m, [])}
        assert names & required, f'module {m} (distribution {names or "unknown"}) is imported but not in requirements'


def test_ci_installs_what_the_readme_says():
    readme = (ROOT/'README.md').read_text()
    ci = (ROOT/'.ci'/'run').read_text().replace(' -q', '')
    cmd = 'pip install -e ".[dev]" -c constraints.txt'
    assert cmd in readme and cmd in ci
    assert re.search(r'key=\$\(cat [^)]*constraints\.txt', ci), 'the CI venv key must change when the constraints do'


def test_license_matches_settings():
    assert settings()['license'] == 'apache2'
    assert 'Apache License' in (ROOT/'LICENSE').read_text()[:200]
