"""Full-reference HVS scorers (``miqa.hvs``: classic, deep_fr, weights).

PSNR/SSIM are checked against scikit-image on real photos (``skimage.data``); VSI by its
fixed point and monotonicity; LPIPS/DISTS with random weights (``pretrained=False``) for
shapes, batching and sign, and with locally written weight files against the published formulas
(written out here, independently of piq). Nothing here may touch the network: downloads raise.
"""
import json
import urllib.request

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.stats import spearmanr
from skimage import data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from skimage.transform import downscale_local_mean
from torchvision.models import vgg as tv_vgg

from miqa.engine.hvs_reference import HVSReferenceHook
from miqa.hub import WEIGHTS, WeightFile, expected_sha256, file_sha256, verify, weight_entry
from miqa.hvs import build_scorer, scorer_status
from miqa.hvs.classic import PSNR_CAP

PSNR_TOL_DB = 1e-3  # piq adds 1e-8 to the MSE and works in float32: < 1e-4 dB here
SSIM_TOL = 1e-4  # float32 (piq) against float64 (skimage): < 2e-5 here
RELU_IDX = (3, 8, 15, 22, 29)  # relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 in torchvision's vgg16.features
POOL_IDX = (4, 9, 16, 23)
CHANNELS = (64, 128, 256, 512, 512)
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError('a test tried to download something')

    monkeypatch.setattr(torch.hub, 'load_state_dict_from_url', refuse)
    monkeypatch.setattr(torch.hub, 'download_url_to_file', refuse)
    monkeypatch.setattr(urllib.request, 'urlopen', refuse)


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh MIQA_HOME (the trust-on-first-use record is per home)."""
    monkeypatch.setenv('MIQA_HOME', str(tmp_path / 'home'))
    return tmp_path / 'home'


def _center(img: np.ndarray, h: int = 96, w: int = 128) -> np.ndarray:
    top, left = (img.shape[0] - h) // 2, (img.shape[1] - w) // 2
    return img[top:top + h, left:left + w].astype(np.float32) / 255.0


@pytest.fixture(scope='module')
def photos():
    return [_center(getattr(data, name)()) for name in ('astronaut', 'chelsea', 'coffee')]


def _t(*imgs: np.ndarray) -> torch.Tensor:
    return torch.stack([torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1) for a in imgs]).float()


def _noisy(img: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(img + rng.normal(0, sigma, img.shape), 0, 1).astype(np.float32)


def _distortions(photos):
    return {'noise': [_noisy(p, 0.05, i) for i, p in enumerate(photos)],
            'blur': [cv2.GaussianBlur(p, (0, 0), 1.5) for p in photos]}


def _skimage_ssim(x: np.ndarray, y: np.ndarray) -> float:
    return structural_similarity(x.astype(np.float64), y.astype(np.float64), gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False, data_range=1, channel_axis=2)


@pytest.mark.parametrize('kind', ['noise', 'blur'])
def test_psnr_ssim_match_skimage(photos, kind):
    dist = _distortions(photos)[kind]
    psnr = build_scorer('PSNR').score(_t(*dist), _t(*photos))  # one batch of the 3 photos
    ssim = build_scorer('SSIM').score(_t(*dist), _t(*photos))
    assert psnr.shape == ssim.shape == (3,)
    for i, (ref, img) in enumerate(zip(photos, dist)):
        want = peak_signal_noise_ratio(ref.astype(np.float64), img.astype(np.float64), data_range=1)
        assert float(psnr[i]) == pytest.approx(want, abs=PSNR_TOL_DB)
        assert float(ssim[i]) == pytest.approx(_skimage_ssim(ref, img), abs=SSIM_TOL)


def test_ssim_downsamples_large_images_as_documented():
    """A 400 px short side is average-pooled by round(400 / 256) = 2 before SSIM."""
    ref = data.astronaut()[:400, :400].astype(np.float32) / 255.0
    img = cv2.GaussianBlur(ref, (0, 0), 2.0)
    got = float(build_scorer('SSIM').score(_t(img), _t(ref))[0])
    pooled = _skimage_ssim(downscale_local_mean(ref, (2, 2, 1)), downscale_local_mean(img, (2, 2, 1)))
    assert got == pytest.approx(pooled, abs=SSIM_TOL)
    assert abs(got - _skimage_ssim(ref, img)) > 0.05  # the full-resolution value differs


def test_psnr_identical_is_capped(photos):
    x = _t(*photos)
    assert build_scorer('PSNR').score(x, x).tolist() == [PSNR_CAP] * 3
    nearly = x.clone()
    nearly[0, 0, 0, 0] += 1 / 255
    out = build_scorer('PSNR').score(nearly, x)
    assert out[1] == PSNR_CAP and 60 < out[0] < PSNR_CAP


def test_vsi_identity_and_monotone_in_noise(photos):
    vsi = build_scorer('VSI')
    assert not vsi.lower_is_better
    ref = _t(*photos)
    assert vsi.score(ref, ref).tolist() == pytest.approx([1.0] * 3, abs=1e-6)
    levels = (0.01, 0.03, 0.1, 0.3)
    scores = torch.stack([vsi.score(_t(*[_noisy(p, s, 1) for p in photos]), ref) for s in levels])
    assert (scores[1:] < scores[:-1]).all(), scores
    assert (scores < 1).all()


@pytest.mark.parametrize('name', ['LPIPS', 'DISTS'])
def test_deep_fr_random_weights_shapes_and_batching(photos, name):
    torch.manual_seed(0)
    scorer = build_scorer(name, pretrained=False)
    assert scorer.lower_is_better and scorer.full_reference and 'RANDOM' in repr(scorer)
    ref = _t(*[p[:64, :64] for p in photos])
    dist = _t(*[_noisy(p[:64, :64], 0.05, i) for i, p in enumerate(photos)])
    batch = scorer.score(dist, ref)
    assert batch.shape == (3,) and batch.dtype == torch.float32
    singles = torch.cat([scorer.score(dist[i:i + 1], ref[i:i + 1]) for i in range(3)])
    torch.testing.assert_close(batch, singles, rtol=1e-5, atol=1e-6)
    assert scorer.score(ref, ref).abs().max() < 1e-5
    assert (batch > 1e-4).all()


@pytest.mark.parametrize('name', ['LPIPS', 'DISTS', 'PSNR'])
def test_quality_sign_against_labels(photos, name):
    """A label that falls with noise correlates positively with quality(), whatever the direction
    of the raw score."""
    torch.manual_seed(0)
    scorer = build_scorer(name, **({} if name == 'PSNR' else dict(pretrained=False)))
    photo = photos[0][16:80, 32:96]
    levels = np.array([0.01, 0.02, 0.04, 0.08, 0.16, 0.32])
    raw = scorer.score(_t(*[_noisy(photo, s, 2) for s in levels]), _t(*[photo] * len(levels))).numpy()
    labels = 1.0 - levels  # machine-quality label falls with noise
    assert spearmanr(scorer.quality(torch.from_numpy(raw)).numpy(), labels)[0] > 0.9
    expected_raw_sign = -1 if scorer.lower_is_better else 1
    assert np.sign(spearmanr(raw, labels)[0]) == expected_raw_sign


def test_missing_weights_name_file_url_and_place(home):
    with pytest.raises(FileNotFoundError) as err:
        build_scorer('LPIPS')
    msg = str(err.value)
    assert 'vgg16-397923af.pth' in msg and 'https://download.pytorch.org/models/vgg16-397923af.pth' in msg
    assert str(home / 'weights' / 'vgg16-397923af.pth') in msg and 'weights=dict(vgg16=' in msg
    for name, key in (('LPIPS', 'lpips_vgg'), ('DISTS', 'dists')):
        ok, reason = scorer_status(name)
        source = WEIGHTS[key]
        assert not ok and source.file in reason and source.url in reason and 'vgg16-397923af.pth' in reason
        assert scorer_status(dict(type=name, pretrained=False))[0]
    assert scorer_status('SSIM') == (True, 'no weight files needed')


def test_status_sees_files_without_building(home, tmp_path):
    for key in ('vgg16', 'dists'):
        (home / 'weights').mkdir(parents=True, exist_ok=True)
        (home / 'weights' / WEIGHTS[key].file).write_bytes(b'not checked by the status')
    assert scorer_status('DISTS')[0]
    ok, reason = scorer_status('LPIPS')
    assert not ok and 'lpips_weights.pt' in reason and 'vgg16-397923af.pth' not in reason
    other = tmp_path / 'lin.pt'
    other.write_bytes(b'x')
    assert scorer_status(dict(type='LPIPS', weights=dict(lpips_vgg=str(other))))[0]


def test_wrong_sha256_is_refused(home, tmp_path):
    fake = tmp_path / 'vgg16-397923af.pth'
    torch.save({'features.0.weight': torch.zeros(1)}, fake)
    with pytest.raises(ValueError, match='sha256') as err:
        build_scorer('DISTS', weights=dict(vgg16=str(fake)))
    assert WEIGHTS['vgg16'].url in str(err.value)


def test_sha256_rules(home, tmp_path):
    # torchvision names carry their digest's first hex digits; the table's full digest agrees
    assert WEIGHTS['vgg16'].sha256.startswith('397923af') and len(WEIGHTS['vgg16'].sha256) == 64
    resnet50 = weight_entry('resnet50').file  # resnet50-0676ba61.pth
    assert expected_sha256('resnet50') == resnet50.rsplit('-', 1)[1].split('.')[0]
    assert expected_sha256('lpips_vgg') == ''
    # no published digest: trusted on first use, recorded, later different files refused
    a, b = tmp_path / 'a.pt', tmp_path / 'b.pt'
    torch.save([torch.ones(c) for c in CHANNELS], a)
    torch.save([torch.zeros(c) for c in CHANNELS], b)
    assert verify('lpips_vgg', a) == file_sha256(a)
    record = json.loads((home / 'weights' / 'sha256.json').read_text())
    assert record['lpips_weights.pt']['sha256'] == file_sha256(a)
    assert record['lpips_weights.pt']['source'] == 'trust-on-first-use'
    verify('lpips_vgg', a)
    with pytest.raises(ValueError, match='differs from .* recorded for .*trust-on-first-use'):
        verify('lpips_vgg', b)


def test_build_scorer_did_you_mean():
    with pytest.raises(KeyError, match='Did you mean: SSIM'):
        build_scorer('SSMI')
    with pytest.raises(KeyError, match='LPIPS'):
        scorer_status('LPIPZ')


def test_build_scorer_names_are_case_insensitive():
    # pyiqa users type lower case: 'psnr' is 'PSNR'; an unknown name still gets did-you-mean
    assert type(build_scorer('psnr')) is type(build_scorer('PSNR'))
    assert type(build_scorer('vsi')).__name__ == 'VSI'
    assert build_scorer(dict(type='ssim')).__class__.__name__ == 'SSIM'
    with pytest.raises(KeyError, match='Did you mean: SSIM'):
        build_scorer('ssmi')


# ---- real-format weight files against the published formulas --------------------------------

def _vgg_file(tmp_path, monkeypatch):
    """A torchvision-format VGG16 file with random features (plus a classifier tensor to ignore),
    declared in the table with its own sha256 as the published one."""
    torch.manual_seed(1)
    net = tv_vgg.make_layers(tv_vgg.cfgs['D'])
    state = {f'features.{k}': v for k, v in net.state_dict().items()}
    state['classifier.0.bias'] = torch.zeros(4)
    path = tmp_path / 'vgg16-test.pth'
    torch.save(state, path)
    monkeypatch.setitem(WEIGHTS, 'vgg16', WeightFile('vgg16', path.name, 'file://test', file_sha256(path)))
    return path, net.eval()


def _relu_features(net, x, pool=None):
    h, out = (x - MEAN) / STD, []
    for i, layer in enumerate(net):
        h = pool(h) if (pool is not None and i in POOL_IDX) else layer(h)
        if i in RELU_IDX:
            out.append(h)
    return out


def test_lpips_formula_with_weight_files(home, tmp_path, monkeypatch, photos):
    vgg, net = _vgg_file(tmp_path, monkeypatch)
    lin = [torch.rand(1, c, 1, 1) for c in CHANNELS]
    torch.save(lin, tmp_path / 'lpips.pt')
    scorer = build_scorer('LPIPS', weights=dict(vgg16=str(vgg), lpips_vgg=str(tmp_path / 'lpips.pt')))
    ref = _t(*photos)[:, :, :64, :64].contiguous()
    dist = _t(*[_noisy(p, 0.1, 3) for p in photos])[:, :, :64, :64].contiguous()
    with torch.no_grad():
        fx, fy = _relu_features(net, dist), _relu_features(net, ref)
    want = 0
    for a, b, w in zip(fx, fy, lin):  # Zhang et al. 2018, eq. 1
        a = a / (a.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        b = b / (b.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        want = want + (w * (a - b) ** 2).sum(1).mean((1, 2))
    torch.testing.assert_close(scorer.score(dist, ref), want, rtol=1e-4, atol=1e-6)
    assert 'lpips_weights.pt' in json.loads((home / 'weights' / 'sha256.json').read_text())


def _l2pool(x):
    """Ding et al.'s L2 pooling: Hann window [0.5, 1, 0.5]^2 (normalised), stride 2, padding 1."""
    a = torch.tensor([0.5, 1.0, 0.5])
    g = (a[:, None] * a[None, :]) / (a[:, None] * a[None, :]).sum()
    g = g.expand(x.shape[1], 1, 3, 3)
    return (F.conv2d(x ** 2, g, stride=2, padding=1, groups=x.shape[1]) + 1e-12).sqrt()


def test_dists_formula_with_weight_files(home, tmp_path, monkeypatch, photos):
    vgg, net = _vgg_file(tmp_path, monkeypatch)
    n = 3 + sum(CHANNELS)
    alpha, beta = 0.1 + 0.01 * torch.randn(1, n, 1, 1), 0.1 + 0.01 * torch.randn(1, n, 1, 1)
    torch.save({'alpha': alpha, 'beta': beta}, tmp_path / 'dists.pt')  # un-normalised, as trained
    scorer = build_scorer('DISTS', weights=dict(vgg16=str(vgg), dists=str(tmp_path / 'dists.pt')))
    ref = _t(*photos)[:, :, :64, :64].contiguous()
    dist = _t(*[cv2.GaussianBlur(p, (0, 0), 2.0) for p in photos])[:, :, :64, :64].contiguous()
    with torch.no_grad():
        fx = [dist, *_relu_features(net, dist, _l2pool)]
        fy = [ref, *_relu_features(net, ref, _l2pool)]
    total = alpha.sum() + beta.sum()
    a_k = torch.split(alpha / total, (3, *CHANNELS), dim=1)
    b_k = torch.split(beta / total, (3, *CHANNELS), dim=1)
    c1 = c2 = 1e-6
    sim = 0
    for x, y, a, b in zip(fx, fy, a_k, b_k):  # Ding et al. 2020, eqs. 7-9
        mx, my = x.mean((2, 3), keepdim=True), y.mean((2, 3), keepdim=True)
        vx, vy = ((x - mx) ** 2).mean((2, 3), keepdim=True), ((y - my) ** 2).mean((2, 3), keepdim=True)
        cov = (x * y).mean((2, 3), keepdim=True) - mx * my
        s1 = (2 * mx * my + c1) / (mx ** 2 + my ** 2 + c1)
        s2 = (2 * cov + c2) / (vx + vy + c2)
        sim = sim + (a * s1 + b * s2).sum((1, 2, 3))
    torch.testing.assert_close(scorer.score(dist, ref), 1 - sim, rtol=1e-4, atol=1e-6)


def test_unknown_weight_key_and_bad_lpips_file(home, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match='unknown weight keys'):
        build_scorer('LPIPS', weights=dict(dists='x.pt'))
    vgg, _ = _vgg_file(tmp_path, monkeypatch)
    torch.save([torch.ones(3)], tmp_path / 'short.pt')
    with pytest.raises(ValueError, match='LPIPS linear weights'):
        build_scorer('LPIPS', weights=dict(vgg16=str(vgg), lpips_vgg=str(tmp_path / 'short.pt')))


# ---- the reference hook builds its rows from the registry -------------------------------------

def test_reference_hook_checks_scorer_names_at_start_up():
    assert HVSReferenceHook(metrics=('PSNR', 'VSI')).metrics == ('PSNR', 'VSI')
    assert HVSReferenceHook(metrics=('PSNR', 'Lite0-MSP')).hvs_set == ('PSNR',)
    with pytest.raises(KeyError, match='Did you mean: PSNR'):
        HVSReferenceHook(metrics=('PSRN',))
