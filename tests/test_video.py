"""VideoMIQA: the pure aggregation/segment functions by hand, the pipeline on synthetic MP4s written
with OpenCV (a blur ramp over a real photo), the outputs, and bad videos."""
import json
import math
import re
import statistics
from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy.stats import spearmanr
from skimage import data as skdata

from miqa.apis.video import (
    VideoMIQA,
    VideoReadError,
    find_segments,
    frame_times,
    per_second,
    read_frames,
    smooth_scores,
    smoothing_window,
    summary_stats,
)

FPS, N_FRAMES, SIZE = 10, 30, 96
SHARP_FRAMES = 15  # frames 0..14 are the photo itself, then the blur grows (t >= 1.5 s)


def blur_sigma(i: int) -> float:
    return 0.0 if i < SHARP_FRAMES else 0.6 + 0.25 * (i - SHARP_FRAMES)


def degrading_frames() -> list:
    """A real photo (skimage's astronaut, BGR 96x96), sharp for 1.5 s, then blurred more each frame."""
    photo = cv2.resize(skdata.astronaut()[:, :, ::-1], (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    return [photo.copy() if blur_sigma(i) == 0 else cv2.GaussianBlur(photo, (0, 0), blur_sigma(i))
            for i in range(N_FRAMES)]


def write_video(path: Path, frames: list, fps: float = FPS) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'mp4v'), fps, (SIZE, SIZE))
    assert writer.isOpened()
    for f in frames:
        writer.write(f)
    writer.release()
    return path


class LaplacianSharpness:
    """A scorer that reacts to blur: v / (v + 100), v = variance of the Laplacian of the gray frame
    (Pech-Pacheco et al., ICPR 2000). Stands in for a trained model through ``model=``."""

    def assess_many(self, frames, batch_size=16):
        v = np.array([cv2.Laplacian(cv2.cvtColor(f, cv2.COLOR_BGR2GRAY), cv2.CV_64F).var() for f in frames])
        return v / (v + 100.0)


@pytest.fixture(scope='module')
def video(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp('video') / 'ramp.mp4', degrading_frames())


@pytest.fixture(scope='module')
def tiny_iqa(tiny_ra_miqa):
    from miqa.apis.inference import MIQAModel
    return MIQAModel(config=str(tiny_ra_miqa['cfg']), checkpoint=False, device='cpu')


# ------------------------------------------------------------------------ pure functions by hand
def test_frame_times_and_summary():
    np.testing.assert_allclose(frame_times([0, 5, 10, 31], 10), [0.0, 0.5, 1.0, 3.1])
    with pytest.raises(ValueError):
        frame_times([0], 0)
    s = [1.0, 2.0, 3.0, 4.0, 10.0]
    stats = summary_stats(s)
    assert stats['mean_score'] == pytest.approx(statistics.fmean(s))
    assert stats['std_score'] == pytest.approx(statistics.pstdev(s))
    assert (stats['min_score'], stats['max_score']) == (1.0, 10.0)
    assert summary_stats([float('nan'), 2.0])['mean_score'] == 2.0
    assert math.isnan(summary_stats([])['mean_score'])


def test_per_second_groups_by_floor_of_time():
    times = frame_times(range(7), 3)  # 0, 1/3, 2/3, 1, 4/3, 5/3, 2
    out = per_second(times, [1, 2, 3, 10, 20, 30, 7])
    assert out == [dict(second=0, mean=2.0, min=1.0, max=3.0, num_frames=3),
                   dict(second=1, mean=20.0, min=10.0, max=30.0, num_frames=3),
                   dict(second=2, mean=7.0, min=7.0, max=7.0, num_frames=1)]


def test_smooth_scores_is_a_centred_mean_of_existing_neighbours():
    np.testing.assert_allclose(smooth_scores([3, 0, 0, 0, 6], 3), [1.5, 1.0, 0.0, 2.0, 3.0])
    np.testing.assert_allclose(smooth_scores([0, 0, 5, 0, 0], 5), [5 / 3, 5 / 4, 1.0, 5 / 4, 5 / 3])
    np.testing.assert_array_equal(smooth_scores([1, 2, 4], 1), [1, 2, 4])
    np.testing.assert_allclose(smooth_scores([2, 4], 11), [3, 3])  # window longer than the series
    np.testing.assert_allclose(smooth_scores([2, math.nan, 4, 6], 3), [2, 3, 5, 5])  # NaN left out
    assert [smoothing_window(s, 0.1) for s in (0, 0.05, 0.2, 0.4, 1.0)] == [1, 1, 3, 5, 11]


def test_find_segments_by_hand():
    times = np.arange(10) * 0.5  # one sample per 0.5 s
    scores = [0.9, 0.9, 0.2, 0.3, 0.1, 0.9, 0.2, 0.9, 0.1, 0.1]
    segs = find_segments(times, scores, threshold=0.5, min_duration_s=1.0, sample_period_s=0.5)
    # runs: samples 2-4 (1.0 s .. 2.5 s), 6 (0.5 s: too short), 8-9 (4.0 .. 5.0: exactly 1 s, kept)
    spans = [(s['start'], s['end'], s['first'], s['last']) for s in segs]
    assert spans == [(1.0, 2.5, 2, 4), (4.0, 5.0, 8, 9)]
    assert segs[0]['duration'] == pytest.approx(1.5)
    assert (segs[0]['min_score'], segs[0]['mean_score']) == (0.1, pytest.approx(0.2))
    # statistics over other values (e.g. raw scores when detecting on smoothed ones)
    values = np.arange(10.0)
    segs = find_segments(times, scores, 0.5, 1.0, 0.5, values=values)
    assert [(s['min_score'], s['mean_score']) for s in segs] == [(2.0, 3.0), (8.0, 8.5)]
    # a NaN (unscored sample) splits a run; nothing below the threshold -> no segment
    segs = find_segments(times, [0.1] * 4 + [math.nan] + [0.1] * 5, 0.5, 2.0, 0.5)
    assert [(s['start'], s['end']) for s in segs] == [(0.0, 2.0), (2.5, 5.0)]
    assert find_segments(times, [0.9] * 10, 0.5, 0.0, 0.5) == []


# ------------------------------------------------------------------------ the pipeline
def test_degrading_video_gives_decreasing_scores_and_a_segment(video, tmp_path):
    report = VideoMIQA(model=LaplacianSharpness()).assess_video(
        video, threshold=0.9, min_duration_s=0.5, smooth=0.3, save_dir=tmp_path, batch_size=7)
    assert (report['fps'], report['frame_count'], report['num_frames']) == (FPS, N_FRAMES, N_FRAMES)
    np.testing.assert_allclose(report['timestamps'], np.arange(N_FRAMES) / FPS)
    assert report['duration_s'] == pytest.approx(3.0)
    scores = np.asarray(report['scores'])
    # independent: the scorer on the decoded frames, read here with OpenCV
    cap = cv2.VideoCapture(str(video))
    decoded = [cap.read()[1] for _ in range(N_FRAMES)]
    np.testing.assert_allclose(scores, LaplacianSharpness().assess_many(decoded))
    assert spearmanr(np.arange(N_FRAMES), scores)[0] < -0.9
    assert scores[:SHARP_FRAMES].min() > scores[SHARP_FRAMES:].max()
    assert report['mean_score'] == pytest.approx(scores.mean())
    assert report['std_score'] == pytest.approx(scores.std())
    assert [p['second'] for p in report['per_second']] == [0, 1, 2]
    assert report['per_second'][2]['mean'] == pytest.approx(scores[20:].mean())
    # one segment: it starts after the blur does (1.5 s) and lasts to the end
    assert len(report['segments']) == 1
    seg = report['segments'][0]
    assert 1.5 <= seg['start'] <= 2.5 and seg['end'] == pytest.approx(3.0)
    assert seg['min_score'] == pytest.approx(scores[seg['first']:].min())

    out = report['outputs']
    assert json.loads(Path(out['json']).read_text()) == report
    png = cv2.imread(out['plot'])
    assert png is not None and png.shape[:2] == (360, 1000)


def test_every_n_max_frames_and_outputs_never_overwritten(video, tmp_path):
    iqa = VideoMIQA(model=LaplacianSharpness())
    r = iqa.assess_video(video, every_n=4, max_frames=5, save_dir=tmp_path, annotate=True)
    assert r['frame_indices'] == [0, 4, 8, 12, 16]
    np.testing.assert_allclose(r['timestamps'], [0.0, 0.4, 0.8, 1.2, 1.6])
    assert r['duration_s'] == pytest.approx(2.0)
    first = {k: Path(v).read_bytes() for k, v in r['outputs'].items()}
    rate, count, frames = read_frames(r['outputs']['video'])
    annotated = list(frames)
    assert rate == pytest.approx(FPS / 4) and len(annotated) == 5
    assert annotated[0][1].shape == (SIZE, SIZE, 3)
    # the score is drawn at the top (a black box with text) and the rest of the frame is kept
    cap = cv2.VideoCapture(str(video))
    original = cap.read()[1].astype(float)
    drawn = annotated[0][1].astype(float)
    assert np.abs(drawn[:12] - original[:12]).mean() > 30
    assert np.abs(drawn[30:80] - original[30:80]).mean() < 8
    again = iqa.assess_video(video, every_n=4, max_frames=5, save_dir=tmp_path, annotate=True)
    assert set(again['outputs'].values()).isdisjoint(r['outputs'].values())
    assert {k: Path(v).read_bytes() for k, v in r['outputs'].items()} == first
    assert len(list(tmp_path.iterdir())) == 6  # no temporary files left behind


def test_with_a_real_miqa_model_scores_equal_per_frame_assess(video, tiny_iqa):
    report = VideoMIQA(model=tiny_iqa).assess_video(video, every_n=3, batch_size=4)
    cap = cv2.VideoCapture(str(video))
    frames = [cap.read()[1] for _ in range(N_FRAMES)][::3]
    np.testing.assert_allclose(report['scores'], [tiny_iqa.assess(f) for f in frames], atol=1e-5)
    assert report['model']['model'] == 'RA-MIQA' and report['threshold'] == 0.4  # the 'Low' band edge


def test_constructor_builds_the_model(tiny_ra_miqa, video):
    cfg, ckpt = tiny_ra_miqa['cfg'], tiny_ra_miqa['ckpt']
    report = VideoMIQA(config=str(cfg), checkpoint=str(ckpt), device='cpu').assess_video(video, max_frames=2)
    assert report['num_frames'] == 2 and report['model']['checkpoint'] == str(ckpt)
    with pytest.raises(TypeError, match='assess_many'):
        VideoMIQA(model=object())


# ------------------------------------------------------------------------ bad videos
def test_bad_videos_raise_errors_that_name_the_file(tmp_path):
    iqa = VideoMIQA(model=LaplacianSharpness())
    text = tmp_path / 'notes.mp4'
    text.write_text('this is a text file, not a video\n' * 20)
    empty = tmp_path / 'zero_bytes.mp4'
    empty.write_bytes(b'')
    no_frames = write_video(tmp_path / 'no_frames.mp4', [])
    for path in (text, empty, no_frames):
        with pytest.raises(VideoReadError, match=re.escape(str(path))):
            iqa.assess_video(path)
    with pytest.raises(FileNotFoundError, match='missing.mp4'):
        iqa.assess_video(tmp_path / 'missing.mp4')
    with pytest.raises(ValueError, match='save_dir'):
        iqa.assess_video(text, annotate=True)


def test_still_images_and_non_finite_settings_are_refused(tmp_path, video):
    iqa = VideoMIQA(model=LaplacianSharpness())
    photo = tmp_path / 'photo.jpg'
    cv2.imwrite(str(photo), np.full((48, 64, 3), 128, np.uint8))
    with pytest.raises(VideoReadError, match=r'photo\.jpg is a still image \(JPEG\).*miqa assess'):
        iqa.assess_video(photo)  # OpenCV itself would play it as a one-frame video
    for key, value in (('threshold', float('nan')), ('min_duration_s', float('inf')), ('smooth', -1.0)):
        with pytest.raises(ValueError, match=key):
            iqa.assess_video(video, **{key: value})
