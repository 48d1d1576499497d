"Fast tests of dcgan_course.conditional: labels, balancing, the critics, sampling helpers, and the judge of quality."
import math
import pytest
import torch

from dcgan_course.data import DataError, gan_dataloaders
from dcgan_course.layers import Generator, Critic
from dcgan_course.core import label_index, parse_attrs, sample_condition
from dcgan_course.fixtures import toy_celeba
from dcgan_course.quality import digit_classifier, classify, train_digit_classifier, judge_digits
from dcgan_course.conditional import (ChannelCritic, conditional_nets, label_combos, balanced_weights, combo_counts,
                                      BalancedGANDataLoader, balance_dls, within_class_std, conditional_dataloaders,
                                      conditional_samples)

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope='module')
def toy_dir(tmp_path_factory):
    return toy_celeba(tmp_path_factory.mktemp('toy'), size=16)


@pytest.fixture(scope='module')
def cls_dls(): return gan_dataloaders('digits', size=16, bs=32, labels=True)


@pytest.fixture(scope='module')
def attr_dls(toy_dir): return gan_dataloaders(toy_dir, size=16, bs=32, labels='Loop,Bold,Odd', cache=False)


def test_toy_celeba_layout(toy_dir):
    lines = (toy_dir.parent/'list_attr_celeba.txt').read_text().splitlines()
    assert lines[0] == '1797' and lines[1].split() == ['Loop', 'Bold', 'Odd']
    name, *vals = lines[2].split()
    assert (toy_dir/name).exists() and set(vals) <= {'1', '-1'}
    # the same folder works as the 'celeba' data set under a root
    dls = gan_dataloaders('celeba', root=toy_dir.parent, size=16, bs=32, labels='Bold', n_channels=1, cache=False)
    assert dls.vocab == ['Bold'] and dls.labels.shape == (1797, 1)


def test_channel_critic(cls_dls, attr_dls):
    z, y, img = cls_dls.one_batch()
    G, D = conditional_nets(cls_dls, nf=8)
    assert isinstance(D, ChannelCritic) and D.blocks[0][0].in_channels == 11
    out = D(img, y)
    assert out.shape == (32,) and not torch.allclose(out, D(img, (y + 1) % 10))
    assert G(z, y).shape == (32, 1, 16, 16)
    with pytest.raises(ValueError, match='conditional'): D(img)
    _, Dp = conditional_nets(cls_dls, critic='projection', nf=8)
    assert type(Dp) is Critic
    z, a, img = attr_dls.one_batch()
    assert conditional_nets(attr_dls, nf=8)[1](img, a).shape == (32,)
    with pytest.raises(DataError, match='no labels'): conditional_nets(gan_dataloaders('digits', size=16))
    with pytest.raises(ValueError, match="'projection' or 'channels'"): conditional_nets(cls_dls, critic='concat')



def test_balancing(attr_dls, cls_dls):
    w = balanced_weights(attr_dls.labels, attr_dls.vocab, by='Loop,Odd')
    ids, combos = label_combos(attr_dls.labels, attr_dls.vocab, by='Loop,Odd')
    assert len(combos) == 4 and math.isclose(w.sum().item(), 1, rel_tol=1e-5)
    for k in range(4): assert math.isclose(w[ids == k].sum().item(), 0.25, rel_tol=1e-4)
    df = combo_counts(attr_dls.labels, attr_dls.vocab, by='Loop,Odd')
    assert list(df.columns[:2]) == ['Loop', 'Odd'] and df['images'].sum() == 1797
    torch.manual_seed(0)
    b = balance_dls(attr_dls, by='Loop,Odd')
    assert isinstance(b.train, BalancedGANDataLoader) and len(b.train) == len(attr_dls.train)
    seen = torch.cat([a for z, a, img in b.train])
    nine = ((seen[:, 0] == 1) & (seen[:, 2] == 1)).float().mean().item()   # 10% of the data, 25% once balanced
    assert 0.18 < nine < 0.32
    assert len(label_combos(balance_dls(cls_dls).labels)[1]) == 10
    with pytest.raises(DataError, match='Unknown attribute'): balanced_weights(attr_dls.labels, attr_dls.vocab, by='Smiling')
    with pytest.raises(DataError, match='classes'): balanced_weights(cls_dls.labels, cls_dls.vocab, by='Loop')
    with pytest.raises(DataError, match='needs labels'): balanced_weights(None)


def test_label_index():
    cifar = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck']
    assert label_index('cat', cifar) == 3 == label_index('CAT', cifar) == label_index('3', cifar) == label_index(3, cifar)
    assert label_index(torch.tensor(7), list('0123456789')) == 7
    with pytest.raises(ValueError, match='valid labels are airplane, automobile'): label_index('unicorn', cifar)
    with pytest.raises(ValueError, match=r'index 0-9'): label_index(10, list('0123456789'))
    with pytest.raises(ValueError, match='valid labels'): label_index(2.5, list('0123456789'))


def test_parse_attrs():
    v = ['Smiling', 'Eyeglasses', 'Male']
    assert parse_attrs('Smiling=1,Eyeglasses=0', v).tolist() == [1., 0., 0.]
    assert parse_attrs('smiling=yes, Male=-1', v).tolist() == [1., 0., 0.]
    assert parse_attrs('Eyeglasses', v, default=1).tolist() == [1., 1., 1.]
    assert parse_attrs('Male=true', v, default=None).isnan().tolist() == [True, True, False]
    assert parse_attrs({'Male': 1}, v).tolist() == [0., 0., 1.]
    with pytest.raises(ValueError, match='knows Smiling, Eyeglasses, Male'): parse_attrs('Hat=1', v)
    with pytest.raises(ValueError, match='must be 1 or 0'): parse_attrs('Smiling=2', v)
    with pytest.raises(ValueError, match='twice'): parse_attrs('Male=1,male=0', v)
    with pytest.raises(ValueError, match='no attribute names'): parse_attrs('Male=1', None)



def test_classifier_and_judge():
    x = torch.rand(5, 1, 32, 32) * 2 - 1
    m = digit_classifier(); m.size = 16
    assert classify(m, x).shape == (5,)                           # any size, resized to 16 px
    clf = train_digit_classifier()
    assert clf.valid_acc > 0.9
    g = Generator(16, nz=16, nf=8, n_classes=10)
    j = judge_digits(g, clf, n_per_class=20)
    assert list(j.index) == list('0123456789') and ((0 <= j) & (j <= 1)).all() and j.mean() < 0.5
    with pytest.raises(ValueError, match='class-conditional'): judge_digits(Generator(16, nz=16, nf=8), clf)
    assert within_class_std(g, n_per_class=8) > 0



def test_conditional_dataloaders(toy_dir, tmp_path):
    assert conditional_dataloaders('digits', size=16).vocab == list('0123456789')
    d = conditional_dataloaders(toy_dir, attrs='Loop,Bold', balance='Loop', size=16, cache=False)
    assert isinstance(d.train, BalancedGANDataLoader) and d.vocab == ['Loop', 'Bold']
    from PIL import Image
    import numpy as np
    (tmp_path/'jpg').mkdir()                                      # the layout of the 'flowers' data set, which has no labels
    for i in range(3): Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path/'jpg'/f'{i}.png')
    with pytest.raises(DataError, match='no labels to condition on'):
        conditional_dataloaders('flowers', root=tmp_path, size=16, bs=2, cache=False)
    with pytest.raises(DataError, match='sub-folder'): conditional_dataloaders(tmp_path/'jpg', size=16, bs=2, cache=False)
    with pytest.raises(ValueError, match='conditional=True'): conditional_dataloaders('digits', conditional=False)


def test_conditional_samples_take_the_one_condition(cls_dls, attr_dls):
    "conditional_samples builds no condition of its own: it is generate + sample_condition, for a generator or a learner."
    from dcgan_course.learner import generate
    from dcgan_course.train import dcgan_learner
    g = Generator(16, nz=16, nf=8, n_classes=10)
    x = conditional_samples(g, 6, label='3', seed=0)
    assert torch.equal(x, generate(g, 6, cond=torch.full((6,), 3), seed=0))
    assert torch.equal(conditional_samples(g, 4, seed=1), generate(g, 4, cond=sample_condition(g, 4), seed=1))
    with pytest.raises(ValueError, match='use label='): conditional_samples(g, 2, attrs='Loop=1')
    learn = dcgan_learner(attr_dls, *conditional_nets(attr_dls, nf=8))
    v = attr_dls.vocab
    a = conditional_samples(learn, 8, attrs='Bold=1', seed=0, vocab=v)   # a learner: its data's rows give the free attributes
    c = sample_condition(learn, 8, attrs='Bold=1', seed=0, vocab=v)
    assert (c[:, 1] == 1).all()
    assert torch.equal(a, generate(learn.sample_generator, 8, cond=c, seed=0))
    with pytest.raises(ValueError, match='use attrs='): conditional_samples(learn, 2, label=1)


def test_balance_dls_keeps_the_loader(attr_dls):
    "balance_dls builds its DataLoaders with data.tensor_dataloaders: the same batches' shape, an empty valid set."
    b = balance_dls(attr_dls, by='Loop')
    t, u = attr_dls.train, b.train
    assert (u.bs, u.nz, u.noise, u.vocab, u.source, u.by) == (t.bs, t.nz, t.noise, t.vocab, t.source, 'Loop')
    assert len(b.valid.images) == 0 and b.valid.labels.shape[1:] == t.labels.shape[1:]
