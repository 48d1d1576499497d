"Fast tests of dcgan_course.explore: interpolation maths, strips, GIFs, arithmetic, and the widget driven headlessly."
import base64, io, json, math, re
from pathlib import Path
import numpy as np
import pytest
import torch
from PIL import Image
import ipywidgets as W

from dcgan_course.layers import Generator
from dcgan_course.learner import generate
from dcgan_course.explore import (slerp, interpolate, seed_latent, seed_samples, interpolation_strip, interpolation_grid, latent_walk,
                                  interpolation_frames, save_gif, to_pil, png_bytes, latent_arithmetic, attribute_direction, jitter,
                                  style_grid, attribute_strip, explorer_latent, explorer_condition, explorer_image, latent_explorer,
                                  explorer_figure)
import dcgan_course.explore as E

NBS = Path(__file__).parents[1]/'nbs'

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope='module')
def gens():
    torch.manual_seed(0)
    g, gc, ga = Generator(16, nz=16, nf=8), Generator(16, nz=16, nf=8, n_classes=10), Generator(16, nz=16, nf=8, n_attrs=3)
    ga.vocab = ['Smiling', 'Eyeglasses', 'Male']
    return [m.eval() for m in (g, gc, ga)]


def _pair(seed=0, nz=100, equal=True):
    r = torch.Generator().manual_seed(seed)
    a, b = torch.randn(nz, generator=r), torch.randn(nz, generator=r)
    return (a, b * a.norm() / b.norm()) if equal else (a, b)



def test_interpolate_shapes_and_errors():
    a, b = torch.randn(1, 100, 1, 1), torch.randn(1, 100, 1, 1)
    assert interpolate(a, b, 5).shape == (5, 100, 1, 1)
    assert slerp(a, b, torch.tensor([0.2, 0.4])).shape == (2, 100, 1, 1)
    z = torch.randn(10)
    assert torch.allclose(slerp(z, 3 * z, 0.5), 2 * z)                 # parallel -> lerp
    assert not slerp(z, -z, 0.3).isnan().any()
    with pytest.raises(ValueError, match="'slerp' or 'lerp'"): interpolate(a, b, 4, method='spline')
    with pytest.raises(ValueError, match='same shape'): interpolate(torch.randn(3), torch.randn(4), 4)
    with pytest.raises(ValueError, match='at least 2'): interpolate(a, b, 1)


def test_strips_grids_walks(gens):
    g, gc, ga = gens
    assert torch.equal(generate(g, z=seed_latent(g, 5)[None]), generate(g, 1, seed=5))
    ss = seed_samples(g, [4, 9])
    assert torch.equal(ss[1], generate(g, 1, seed=9)[0])
    assert seed_samples(gc, range(3), label='2').shape == (3, 1, 16, 16)
    s = interpolation_strip(g, seeds=(1, 2), steps=6)
    assert s.shape == (6, 1, 16, 16) and torch.allclose(s[0], generate(g, 1, seed=1)[0], atol=1e-5)
    sc = interpolation_strip(gc, seeds=(1, 2), steps=4, label=7)
    assert torch.allclose(sc[-1], generate(gc, 1, seed=2, cond=torch.tensor([7]))[0], atol=1e-5)
    assert interpolation_strip(ga, steps=3, attrs='Smiling=1').shape == (3, 1, 16, 16)
    grid = interpolation_grid(g, seeds=(0, 1, 2, 3), n=4)
    assert grid.shape == (16, 1, 16, 16)
    for corner, sd in zip((0, 3, 12, 15), range(4)): assert torch.allclose(grid[corner], generate(g, 1, seed=sd)[0], atol=1e-5)
    with pytest.raises(ValueError, match='4 seeds'): interpolation_grid(g, seeds=(0, 1))
    w = latent_walk(g, dims=(0, 5), values=[-1., 0., 1.], seed=3)
    assert w.shape == (6, 1, 16, 16) and not torch.equal(w[0], w[2])
    with pytest.raises(ValueError, match='nz=16'): latent_walk(g, dims=(16,))
    assert style_grid(gc, n_styles=2).shape == (20, 1, 16, 16)
    with pytest.raises(ValueError, match='class-conditional'): style_grid(g)
    st = attribute_strip(ga, 'Male', values=[0., 0.5, 1.], attrs='Smiling=1')
    assert st.shape == (3, 1, 16, 16) and not torch.equal(st[0], st[2])
    with pytest.raises(ValueError, match='knows Smiling'): attribute_strip(ga, 'Hat')


def test_gif(gens, tmp_path):
    g = gens[0]
    frames = interpolation_frames(g, seeds=(0, 1, 2), steps=5)
    assert frames.shape == (15, 1, 16, 16)
    assert interpolation_frames(g, seeds=(0, 1), steps=5, closed=False).shape == (6, 1, 16, 16)
    f = save_gif(frames, tmp_path/'a.gif', scale=2, duration=50)
    with Image.open(f) as im:
        assert im.n_frames == 15 and im.size == (32, 32) and im.info.get('loop') == 0
        assert np.array_equal(np.asarray(im.convert('L')), np.asarray(to_pil(frames[0], 2)))
    batches = torch.stack([frames, frames.flip(0)], 1)                    # (T, 2, C, H, W): a grid per frame
    with Image.open(save_gif(batches, tmp_path/'b.gif', scale=1)) as im: assert im.n_frames == 15
    rgb = torch.rand(3, 3, 8, 8) * 2 - 1
    with Image.open(save_gif(rgb, tmp_path/'c.gif')) as im: assert im.n_frames == 3 and im.size == (32, 32)
    with pytest.raises(ValueError, match='No frames'): save_gif([], tmp_path/'d.gif')
    assert png_bytes(frames[0])[:4] == b'\x89PNG'


def test_arithmetic():
    a, b, c = torch.randn(3, 8), torch.randn(3, 8), torch.randn(3, 8)
    assert torch.allclose(latent_arithmetic(a, b, c), a.mean(0) - b.mean(0) + c.mean(0))
    assert torch.allclose(latent_arithmetic(a[0], b[0], c[0]), a[0] - b[0] + c[0])
    assert latent_arithmetic(torch.randn(3, 8, 1, 1), torch.randn(3, 8, 1, 1), torch.randn(3, 8, 1, 1)).shape == (8, 1, 1)
    d = attribute_direction(torch.tensor([[2., 0.], [4., 0.], [0., 1.]]), torch.tensor([1, 1, 0]))
    assert d.tolist() == [3., -1.]
    with pytest.raises(ValueError, match='with and without'): attribute_direction(a, [0, 0, 0])
    with pytest.raises(ValueError, match='labels for'): attribute_direction(a, [0, 1])
    j = jitter(a[0], 5, 0.1, seed=1)
    assert j.shape == (5, 8) and (j - a[0]).abs().max() <= 0.1 and torch.equal(j, jitter(a[0], 5, 0.1, seed=1))


def test_explorer_functions(gens):
    g, gc, ga = gens
    assert torch.equal(explorer_latent(g, 0, 1, 0.), seed_latent(g, 0)[None])
    assert torch.allclose(explorer_latent(g, 0, 1, 1.), seed_latent(g, 1)[None], atol=1e-5)
    d = explorer_latent(g, 0, 1, 0.3, {2: 1.}) - explorer_latent(g, 0, 1, 0.3)
    assert math.isclose(d.flatten()[2].item(), 1., rel_tol=1e-5) and d.abs().sum().item() == pytest.approx(1.)
    with pytest.raises(ValueError, match='nz=16'): explorer_latent(g, offsets={99: 1.})
    assert explorer_condition(g) is None
    assert explorer_condition(gc, '4').tolist() == [4]
    assert explorer_condition(ga, attrs=['Male']).tolist() == [[0., 0., 1.]]
    assert explorer_condition(ga, attrs=[1, 1, 0]).tolist() == [[1., 1., 0.]]
    assert explorer_condition(ga).tolist() == [[0., 0., 0.]]
    with pytest.raises(ValueError, match='use attrs='): explorer_condition(ga, 'Male')
    with pytest.raises(ValueError, match='use label='): explorer_condition(gc, attrs=['Male'])
    assert explorer_condition(gc, 2, n=3).tolist() == [2, 2, 2]                  # one condition for a grid
    assert explorer_condition(ga, attrs=['Smiling'], n=2).tolist() == [[1., 0., 0.]] * 2
    st = torch.random.get_rng_state()
    explorer_condition(ga, attrs=['Male'])
    assert torch.equal(st, torch.random.get_rng_state())                         # never draws from the global RNG
    with pytest.raises(ValueError, match='3 attributes'): explorer_condition(ga, attrs=[1, 0])
    img, png = explorer_image(g, explorer_latent(g), scale=3)
    assert img.shape == (1, 1, 16, 16) and Image.open(io.BytesIO(png)).size == (48, 48)


def test_explorer_widget(gens):
    g, gc, ga = gens
    w = latent_explorer(gc, dims=(0, 1), seeds=(0, 1), scale=2)
    before = w.image.value
    w.t.value = 0.5
    assert w.image.value != before
    assert torch.equal(w.current, explorer_image(gc, explorer_latent(gc, 0, 1, 0.5), torch.tensor([0]))[0])
    before = w.image.value; w.sliders[0].value = -2.
    assert w.image.value != before
    before = w.image.value; w.toggles.value = '9'
    assert w.image.value != before
    assert torch.equal(w.current, explorer_image(gc, explorer_latent(gc, 0, 1, 0.5, {0: -2.}), torch.tensor([9]))[0])
    before = w.image.value; w.seeds[0].value = 17
    assert w.image.value != before
    wa = latent_explorer(ga)
    assert [b.description for b in wa.toggles.children] == ['Smiling', 'Eyeglasses', 'Male']
    before = wa.image.value; wa.toggles.children[2].value = True
    assert wa.image.value != before
    wu = latent_explorer(g)
    assert wu.toggles is None and 'LatentExplorer' in repr(wu) and 'unconditional' in repr(wu)
    assert '10 classes' in repr(w)
    for x in (w, wa, wu): x.close()
    with pytest.raises(ValueError, match='nz=16'): latent_explorer(g, dims=(20,))


def test_explorer_fits_a_laptop_screen(gens):
    "The image has a fixed size of at most 400 px, beside its controls (an HBox), and the parts carry stable CSS classes."
    g, gc, _ = gens
    w = latent_explorer(gc, dims=(0, 1, 2))
    assert isinstance(w, W.HBox) and w.children[0] is w.image
    assert w.image in w.children and any(w.t in getattr(c, 'children', ()) for c in w.children if c is not w.image)
    px = [int(v[:-2]) for v in (w.image.layout.width, w.image.layout.height)]
    assert px[0] == px[1] and 0 < px[0] <= 400
    assert w.image.layout.object_fit == 'contain'
    assert Image.open(io.BytesIO(w.image.value)).size == (px[0], px[1])          # enlarged by a whole factor to fill the box
    for s in (*w.sliders, w.t): assert s.layout.width and int(s.layout.width[:-2]) <= 400
    assert 'dcgan-explorer' in w._dom_classes and 'dcgan-explorer-image' in w.image._dom_classes
    assert 'dcgan-explorer-message' in w.message._dom_classes
    assert all('dcgan-explorer-control' in c._dom_classes for c in (*w.seeds, w.t, *w.sliders, w.toggles))
    big = latent_explorer(g, size=12)                                            # an image larger than its box: shrunk to fit
    assert big.image.layout.width == '12px' and Image.open(io.BytesIO(big.image.value)).size == (16, 16)
    for x in (w, big): x.close()


def test_explorer_grid(gens):
    "grid=n shows n samples (seeds A+k to B+k) that share the sliders: a slider moves all of them; also for conditional models."
    g, gc, ga = gens
    w = latent_explorer(g, grid=4, dims=(0, 1), seeds=(2, 7))
    assert w.current.shape == (4, 1, 16, 16)
    for k in range(4): assert torch.allclose(w.current[k], generate(g, 1, seed=2 + k)[0], atol=1e-5)
    with Image.open(io.BytesIO(w.image.value)) as im: assert im.size == (w.scale * (2 * 18 + 2),) * 2     # a 2 x 2 grid
    before = w.current.clone()
    w.sliders[1].value = 2.5
    assert all(not torch.equal(a, b) for a, b in zip(before, w.current))
    assert torch.equal(w.current, explorer_image(g, explorer_latent(g, 2, 7, 0., {1: 2.5}, n=4))[0])
    w16 = latent_explorer(g, grid=16)
    assert w16.current.shape[0] == 16 and int(w16.image.layout.width[:-2]) <= 400
    wc = latent_explorer(gc, grid=4)
    before = wc.current.clone(); wc.toggles.value = '3'
    assert all(not torch.equal(a, b) for a, b in zip(before, wc.current))
    assert torch.equal(wc.current, explorer_image(gc, explorer_latent(gc, n=4), torch.full((4,), 3))[0])
    wa = latent_explorer(ga, grid=9)
    wa.toggles.children[0].value = True
    assert torch.equal(wa.current, explorer_image(ga, explorer_latent(ga, n=9), torch.tensor([[1., 0., 0.]] * 9))[0])
    assert 'grid of 9' in repr(wa)
    with pytest.raises(ValueError, match='grid must be'): latent_explorer(g, grid=0)
    for x in (w, w16, wc, wa): x.close()


def test_explorer_bad_seed_shows_a_message(gens):
    "A seed torch refuses (or would alias) sets one message line naming the range; the panel stays usable; success clears it."
    g, gc, _ = gens
    w = latent_explorer(gc, dims=(0,))
    assert w.message.value == ''
    for good, bad in enumerate((99999999999999999999, -1, 2**64), 5):
        before, cur = w.image.value, w.current.clone()
        w.seeds[0].value = bad
        assert w.image.value == before and torch.equal(w.current, cur)           # the last good image stays
        assert 'seed A must be a whole number from 0 to 18446744073709551615' in w.message.value and str(bad) in w.message.value
        assert '\n' not in w.error and 'Traceback' not in w.message.value
        w.seeds[0].value = good
        assert w.message.value == '' and w.error == '' and w.image.value != before
        assert torch.equal(w.current, explorer_image(gc, explorer_latent(gc, good, 1), torch.tensor([0]))[0])
    wg = latent_explorer(g, grid=4)
    wg.seeds[1].value = 2**64 - 2                                                # B+3 would be past the end
    assert 'seed B' in wg.message.value and 'a grid of 4' in wg.message.value
    wg.seeds[1].value = 2**64 - 4
    assert wg.message.value == ''
    with pytest.raises(ValueError, match='seed B must be'): latent_explorer(g, seeds=(0, -1))
    assert E.check_seed(2**64 - 1) == 2**64 - 1
    for bad in (-1, 2**64, 1.5, 'x', True):
        with pytest.raises(ValueError, match='whole number from 0 to'): E.check_seed(bad)
    with pytest.raises(ValueError, match='from 0 to'): seed_latent(g, -1)
    for x in (w, wg): x.close()


def test_explorer_mimebundle(gens):
    "The display of a panel holds the widget view, a picture of the panel (image/png) and a short, complete text/plain."
    g, gc, ga = gens
    for gen, kw in ((gc, dict(dims=(0, 1, 2, 3))), (ga, dict(grid=4)), (g, dict(dims=tuple(range(12))))):
        w = latent_explorer(gen, **kw)
        w.t.value = 0.4
        b = w._repr_mimebundle_()
        assert b['application/vnd.jupyter.widget-view+json']['model_id'] == w.model_id
        text = b['text/plain']
        assert len(text) <= 110 and '…' not in text and text.startswith('LatentExplorer(') and text.endswith(')')
        png = base64.b64decode(b['image/png'])
        with Image.open(io.BytesIO(png)) as pic:
            side = int(w.image.layout.width[:-2])
            assert pic.format == 'PNG' and pic.width >= side + 200 and pic.height >= side
            a = np.asarray(pic.convert('RGB'))
            shown = np.asarray(Image.open(io.BytesIO(w.image.value)).convert('RGB'))
            assert np.array_equal(a[8:8 + shown.shape[0], 8:8 + shown.shape[1]], shown)   # the image as shown, top left
            assert (a[:, side + 20:] != 255).any()                                       # and the controls drawn beside it
        w.close()


def _widget_ids(obj) -> set:
    "Model ids that a notebook's outputs display (application/vnd.jupyter.widget-view+json)."
    return {o['data']['application/vnd.jupyter.widget-view+json']['model_id'] for c in obj['cells'] for o in c.get('outputs', [])
            if 'application/vnd.jupyter.widget-view+json' in o.get('data', {})}


@pytest.mark.parametrize('nb', sorted(NBS.glob('*.ipynb')), ids=lambda p: p.name)
def test_no_unused_widget_state(nb):
    "A notebook saves widget state only for the widgets its outputs show (and the models those refer to): none is simplest."
    obj = json.loads(nb.read_text())
    state = obj.get('metadata', {}).get('widgets', {}).get('application/vnd.jupyter.widget-state+json', {}).get('state', {})
    if not state: return
    seen, todo = set(), [i for i in _widget_ids(obj) if i in state]
    while todo:                                                                  # models reachable from a shown view
        i = todo.pop()
        if i in seen: continue
        seen.add(i)
        todo += [j for j in re.findall(r'IPY_MODEL_([0-9a-f]+)', json.dumps(state[i])) if j in state]
    unused = set(state) - seen
    assert not unused, f'{nb.name} saves {len(unused)} widget models that no output shows: strip metadata.widgets'


def test_gif_html(gens, tmp_path):
    "An animated GIF as an HTML <img> with the file inline: nbconvert keeps text/html (it drops image/gif)."
    f = save_gif(interpolation_frames(gens[0], seeds=(0, 1), steps=3), tmp_path/'a.gif', scale=2)
    h = E.gif_html(f, alt='a <walk>')
    m = re.fullmatch(r'<img src="data:image/gif;base64,([A-Za-z0-9+/=]+)" alt="a &lt;walk&gt;".*>', h.data)
    assert m and base64.b64decode(m.group(1)) == f.read_bytes()


def test_saved_explorer_notebook():
    "06_explore shows its panels as pictures and its animations as text/html, with no widget state saved."
    obj = json.loads((NBS/'06_explore.ipynb').read_text())
    outs = [o for c in obj['cells'] for o in c.get('outputs', [])]
    views = [o for o in outs if 'application/vnd.jupyter.widget-view+json' in o.get('data', {})]
    assert views and all('image/png' in o['data'] and len(''.join(o['data']['text/plain'])) <= 110 for o in views)
    assert not any('image/gif' in o.get('data', {}) for o in outs)
    assert sum('data:image/gif;base64,' in ''.join(o.get('data', {}).get('text/html', '')) for o in outs) >= 1
    assert 'widgets' not in obj['metadata']


def test_one_condition_for_all_images(gens):
    "The strips, grids and walks give every image the one condition that sample_condition(..., same=True) picks."
    g, gc, ga = gens
    from dcgan_course.core import sample_condition
    x = interpolation_strip(gc, steps=4, label='5')
    assert torch.equal(x, generate(gc, z=interpolate(seed_latent(gc, 0), seed_latent(gc, 1), 4).view(4, -1, 1, 1),
                                   cond=torch.full((4,), 5)))
    c = sample_condition(ga, 6, attrs='Male=1', seed=3, same=True)
    assert (c == c[:1]).all() and (c[:, 2] == 1).all()
    w = latent_walk(ga, dims=(0,), values=[0., 1.], seed=3, attrs='Male=1')
    z = seed_latent(ga, 3).reshape(-1).repeat(2, 1); z[:, 0] = torch.tensor([0., 1.])
    assert torch.equal(w, generate(ga, z=z.view(2, -1, 1, 1), cond=c[:2]))


def test_explorer_figure(gens):
    "explorer_figure shows the images the explorer would: the A->B row, then one row per offset slider."
    import matplotlib.pyplot as plt
    g, gc, ga = gens
    fig = explorer_figure(g, dims=(1,), steps=3)
    assert fig.images_.shape == (6, 1, 16, 16)
    assert torch.allclose(fig.images_[2:3], generate(g, z=seed_latent(g, 1)[None]), atol=1e-5)      # t = 1: seed B
    fc = explorer_figure(gc, dims=(0,), steps=2, label='7')
    assert torch.equal(fc.images_[:1], generate(gc, z=seed_latent(gc, 0)[None], cond=torch.tensor([7])))
    with pytest.raises(ValueError, match='use attrs='): explorer_figure(ga, label='Male')
    plt.close('all')
