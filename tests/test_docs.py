"Every public parameter of the library has a docment: the comment after it that nbdev shows as its documentation."
import importlib, inspect, pkgutil, warnings
import pytest
from fastcore.docments import docments
import dcgan_course

MODULES = sorted(m.name for m in pkgutil.iter_modules(dcgan_course.__path__) if m.name not in ('_modidx', 'all'))
VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


def _has_source(f) -> bool:
    try: inspect.getsource(f)
    except OSError: return False
    return True


def public_callables(mod):
    "The functions, and the classes' `__init__` and public methods, that `mod` exports in `__all__` and the library defines."
    for name in getattr(mod, '__all__', []):
        o = getattr(mod, name)
        if inspect.isfunction(o): yield name, o
        elif inspect.isclass(o):
            for k, f in vars(o).items():
                if inspect.isfunction(f) and (k == '__init__' or not k.startswith('_')) and f.__module__.startswith('dcgan_course'):
                    if _has_source(f): yield f'{name}.{k}', f    # not a dataclass's generated __init__ (`Recipe`: its fields' help)


def undocumented(f) -> list:
    "The named parameters of `f` (not self, *args, **kwargs) that have no docment."
    params = inspect.signature(f).parameters
    docs = docments(f, full=True)
    return [p for p, v in params.items() if p not in ('self', 'cls') and v.kind not in VARIADIC and not docs[p]['docment']]


@pytest.mark.parametrize('module', MODULES)
def test_every_public_parameter_has_a_docment(module):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        mod = importlib.import_module(f'dcgan_course.{module}')
    missing = [f'{n}({p})' for n, f in public_callables(mod) for p in undocumented(f)]
    assert not missing, f'{module}: parameters without a docment: ' + ', '.join(missing)


def test_the_check_sees_a_missing_docment(tmp_path, monkeypatch):
    (tmp_path/'docmented.py').write_text('def documented(a:int, # the first\n               b=2, # the second\n              ): pass\n'
                                         'def bare(a, b=2, *args, **kwargs): pass\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    m = importlib.import_module('docmented')
    assert undocumented(m.documented) == [] and undocumented(m.bare) == ['a', 'b']
