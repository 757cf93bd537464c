"""Train a quality model: ``python tools/train.py CONFIG [options]`` (``--help`` lists them).

Single process, ``torchrun --nproc_per_node=N tools/train.py CONFIG --launcher pytorch``
(or ``tools/dist_train.sh CONFIG N``), on GPUs or CPUs (gloo) unchanged. The parser and the run
live in :mod:`miqa.engine.train`.
"""
from miqa.engine.train import main

if __name__ == '__main__':
    main()
