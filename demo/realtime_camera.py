"""Live MIQA score of a webcam or a video stream (the seed README's "Real-time Camera Assessment").

    # webcam 0, the published RA-MIQA (weights from $MIQA_HOME/weights, downloaded when missing)
    python demo/realtime_camera.py 0
    # this project's own checkpoint, an RTSP/HTTP stream or a file, every 3rd frame scored, smoothed
    python demo/realtime_camera.py rtsp://camera.local/stream --config configs/demo/ra_miqa_mini.py \\
        --checkpoint work_dirs/ra_miqa_mini/best_SRCC_iter_60.pth --skip 2 --ema 0.3
    # no display (servers, opencv-python-headless): print scores, optionally save an annotated MP4
    python demo/realtime_camera.py video.mp4 --no-display --save annotated.mp4 --max-frames 300

Each frame gets the score of :class:`miqa.apis.RealTimeIQA` drawn on it (green at or above
``--threshold``, red below) with the model's latency; ``q`` or Esc quits the window. A window
needs OpenCV with GUI support (``pip install opencv-python``; this project pins the headless
build, which cannot open windows: use ``--no-display`` there). This script is documented, not
run by the tests (it needs a camera); its parts are (``tests/test_realtime.py``,
``tests/test_video.py``).
"""
import argparse
import math
import os
import sys
import time
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from miqa.apis.realtime import RealTimeIQA  # noqa: E402
from miqa.apis.video import draw_score  # noqa: E402
from miqa.utils.io import unique_path  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument('source', help='camera index (0, 1, ...), a video file or a stream URL (rtsp://, http://)')
    parser.add_argument('--model', default='ra-miqa', help='published model name (see `miqa models`)')
    parser.add_argument('--task', default='cls', choices=['cls', 'det', 'ins'])
    parser.add_argument('--label', default='composite', choices=['composite', 'consistency', 'accuracy'])
    parser.add_argument('--config', help='config of this project\'s own model (with --checkpoint)')
    parser.add_argument('--checkpoint', help='weights file (default: the published model\'s)')
    parser.add_argument('--device', default='auto')
    parser.add_argument('--skip', type=int, default=0, help='frames to skip after each scored one')
    parser.add_argument('--ema', type=float, default=None, help='smoothing factor in (0, 1] (default: none)')
    parser.add_argument('--threshold', type=float, default=0.4, help='score drawn red below it (default 0.4)')
    parser.add_argument('--no-display', action='store_true',
                        help='no window; print one line per scored frame')
    parser.add_argument('--save', help='also write the annotated frames to this MP4 (never overwritten)')
    parser.add_argument('--max-frames', type=int, default=None, help='stop after this many frames')
    return parser.parse_args()


def open_source(source: str) -> cv2.VideoCapture:
    cap = cv2.VideoCapture(int(source)) if source.isdigit() else cv2.VideoCapture(source)
    if not cap.isOpened():
        hint = ('is a camera connected and free?' if source.isdigit()
                else 'check the path or URL' if not os.path.exists(source) else 'not a decodable video')
        raise SystemExit(f'cannot open {source}: {hint}')
    return cap


def main() -> None:
    args = parse_args()
    rt = RealTimeIQA(name=args.model, task=args.task, label=args.label, checkpoint=args.checkpoint,
                     config=args.config, device=args.device, skip=args.skip, ema=args.ema)
    cap = open_source(args.source)
    fps = cap.get(cv2.CAP_PROP_FPS)
    writer = None
    seen, start = 0, time.perf_counter()
    try:
        while args.max_frames is None or seen < args.max_frames:
            ok, frame = cap.read()
            if not ok:
                break
            seen += 1
            scored_before = rt.frames_scored
            score = rt.assess_frame(frame)
            if args.no_display and rt.frames_scored > scored_before:
                print(f'frame {seen - 1}: score {score:.4f} (raw {rt.last_raw_score:.4f}, '
                      f'{rt.last_latency_s * 1e3:.0f} ms)', flush=True)
            shown = draw_score(frame, score, args.threshold)
            if math.isfinite(rt.last_latency_s):
                cv2.putText(shown, f'{rt.last_latency_s * 1e3:.0f} ms/frame', (6, shown.shape[0] - 16),
                            cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
            if args.save:
                if writer is None:
                    path = unique_path(args.save)
                    h, w = shown.shape[:2]
                    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*'mp4v'), fps if fps > 0 else 25,
                                             (w, h))
                    print(f'writing {path}')
                writer.write(shown)
            if not args.no_display:
                try:
                    cv2.imshow('MIQA (q to quit)', shown)
                except cv2.error:
                    raise SystemExit('this OpenCV build has no GUI (opencv-python-headless): run with '
                                     '--no-display [--save out.mp4], or pip install opencv-python') from None
                if cv2.waitKey(1) & 0xFF in (ord('q'), 27):
                    break
    finally:
        cap.release()
        if writer is not None:
            writer.release()
        if not args.no_display:
            try:
                cv2.destroyAllWindows()
            except cv2.error:
                pass
    elapsed = time.perf_counter() - start
    print(f'{seen} frames, {rt.frames_scored} scored, {seen / max(elapsed, 1e-9):.1f} frames/s; '
          f'last score {rt.last_score:.4f}')


if __name__ == '__main__':
    main()
