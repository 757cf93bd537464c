"""RealTimeIQA: same score as MIQAModel.assess on camera-like frames, and frame skipping and
exponential smoothing checked against hand-computed sequences of the model's own scores."""

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from miqa.apis.realtime import RealTimeIQA


@pytest.fixture(scope='module')
def tiny_iqa(tiny_ra_miqa):
    from miqa.apis.inference import MIQAModel
    return MIQAModel(config=str(tiny_ra_miqa['cfg']), checkpoint=False, device='cpu')


@pytest.fixture(scope='module')
def frames():
    """Camera-sized (640x480) BGR frames of real photos, each different."""
    photos = [skdata.astronaut(), skdata.chelsea(), skdata.coffee(), skdata.rocket()]
    bgr = [cv2.resize(p, (640, 480), interpolation=cv2.INTER_AREA)[:, :, ::-1].copy() for p in photos]
    bgr.append(cv2.GaussianBlur(bgr[0], (0, 0), 3))
    return bgr


@pytest.fixture(scope='module')
def raw_scores(tiny_iqa, frames):
    return [tiny_iqa.assess(f) for f in frames]


def test_assess_frame_equals_miqa_model_assess(tiny_iqa, frames, raw_scores):
    rt = RealTimeIQA(model=tiny_iqa)
    got = [rt.assess_frame(f) for f in frames]
    np.testing.assert_allclose(got, raw_scores, atol=1e-5)
    assert len(set(np.round(raw_scores, 6))) == len(frames)  # the frames do give different scores
    # the same photo as an RGB PIL image (an independent decoding path of MIQAModel)
    rgb = Image.fromarray(np.ascontiguousarray(frames[1][:, :, ::-1]))
    assert rt.assess_frame(frames[1]) == pytest.approx(tiny_iqa.assess(rgb), abs=1e-5)
    # the RGB buffer is allocated once per frame size
    buffer = rt._rgb
    rt.assess_frame(frames[2])
    assert rt._rgb is buffer
    assert rt.frames_seen == rt.frames_scored == len(frames) + 2
    assert rt.last_latency_s > 0


def test_frames_other_than_uint8_bgr_take_the_model_path(tiny_iqa, frames):
    rt = RealTimeIQA(model=tiny_iqa)
    gray = cv2.cvtColor(frames[0], cv2.COLOR_BGR2GRAY)
    bgra = cv2.cvtColor(frames[0], cv2.COLOR_BGR2BGRA)
    assert rt.assess_frame(gray) == pytest.approx(tiny_iqa.assess(gray), abs=1e-5)
    assert rt.assess_frame(bgra) == pytest.approx(tiny_iqa.assess(frames[0]), abs=1e-5)
    mirrored = frames[1][:, ::-1]  # a view with a negative stride
    assert rt.assess_frame(mirrored) == pytest.approx(tiny_iqa.assess(mirrored.copy()), abs=1e-5)
    with pytest.raises(ValueError, match='empty'):
        rt.assess_frame(np.zeros((0, 0, 3), np.uint8))


def test_skip_and_ema_by_hand(tiny_iqa, frames, raw_scores):
    x = raw_scores
    rt = RealTimeIQA(model=tiny_iqa, skip=1, ema=0.25)
    got = [rt.assess_frame(f) for f in frames]  # frames 0, 2, 4 are scored
    s0 = x[0]
    s2 = 0.25 * x[2] + 0.75 * s0
    s4 = 0.25 * x[4] + 0.75 * s2
    np.testing.assert_allclose(got, [s0, s0, s2, s2, s4], atol=1e-5)
    assert (rt.frames_seen, rt.frames_scored) == (5, 3)
    assert rt.last_raw_score == pytest.approx(x[4], abs=1e-5)

    rt = RealTimeIQA(model=tiny_iqa, skip=3)
    got = [rt.assess_frame(f) for f in frames]  # frames 0 and 4 are scored, no smoothing
    np.testing.assert_allclose(got, [x[0]] * 4 + [x[4]], atol=1e-5)

    rt.reset()  # a new stream: the next frame is scored and starts the average afresh
    assert rt.assess_frame(frames[3]) == pytest.approx(x[3], abs=1e-5)
    assert rt.frames_seen == 1


@pytest.mark.parametrize('kwargs', [dict(skip=-1), dict(skip=1.5), dict(ema=0), dict(ema=1.5)])
def test_bad_options(tiny_iqa, kwargs):
    with pytest.raises(ValueError):
        RealTimeIQA(model=tiny_iqa, **kwargs)


def test_model_must_be_a_miqa_model():
    with pytest.raises(TypeError, match='MIQAModel'):
        RealTimeIQA(model=object())
