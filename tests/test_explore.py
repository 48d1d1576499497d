"Fast tests of dcgan_course.explore: interpolation maths, strips, GIFs, arithmetic, and the widget driven headlessly."
import io, math
import numpy as np
import pytest
import torch
from PIL import Image

from dcgan_course.layers import Generator
from dcgan_course.learner import generate
from dcgan_course.explore import (slerp, interpolate, seed_latent, seed_samples, interpolation_strip, interpolation_grid, latent_walk,
                                  interpolation_frames, save_gif, to_pil, png_bytes, latent_arithmetic, attribute_direction, jitter,
                                  style_grid, attribute_strip, explorer_latent, explorer_condition, explorer_image, latent_explorer)

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
    with pytest.raises(ValueError, match='pass attrs='): explorer_condition(ga, 'Male')
    with pytest.raises(ValueError, match='3 attributes'): explorer_condition(ga, attrs=[1, 0])
    img, png = explorer_image(g, explorer_latent(g), scale=3)
    assert img.shape == (1, 1, 16, 16) and Image.open(io.BytesIO(png)).size == (48, 48)


def test_explorer_widget(gens):
    g, gc, ga = gens
    w = latent_explorer(gc, dims=(0, 1), seeds=(0, 1), scale=2)
    image, seeds, t, sliders, toggles = w.children
    before = image.value
    t.value = 0.5
    assert image.value != before
    assert torch.equal(w.current, explorer_image(gc, explorer_latent(gc, 0, 1, 0.5), torch.tensor([0]))[0])
    before = image.value; sliders.children[0].value = -2.
    assert image.value != before
    before = image.value; toggles.value = '9'
    assert image.value != before
    assert torch.equal(w.current, explorer_image(gc, explorer_latent(gc, 0, 1, 0.5, {0: -2.}), torch.tensor([9]))[0])
    before = image.value; seeds.children[0].value = 17
    assert image.value != before
    wa = latent_explorer(ga)
    assert [b.description for b in wa.children[4].children] == ['Smiling', 'Eyeglasses', 'Male']
    before = wa.children[0].value; wa.children[4].children[2].value = True
    assert wa.children[0].value != before
    wu = latent_explorer(g)
    assert len(wu.children) == 4 and 'LatentExplorer' in repr(wu) and 'unconditional' in repr(wu)
    assert '10 class toggles' in repr(w)
    for x in (w, wa, wu): x.close()
    with pytest.raises(ValueError, match='nz=16'): latent_explorer(g, dims=(20,))
