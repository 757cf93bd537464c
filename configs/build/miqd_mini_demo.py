# MIQD-mini, demo subset: the embedded default that `make demo` (and
# `python tools/train.py configs/demo/ra_miqa_mini.py`) builds on first use (cached afterwards).
# Every photo of the MIQD-mini table that is installed (about 395 photos and crops in 360 photo
# groups with the Debian photo packages, 16 without them: `make photos` installs them), short
# side 256, and a STRATIFIED SUBSET of the 250 variants per photo: 5 of the 10 distortions (drawn
# per photo) x 3 variants (one uniform, one ROI-dominated, one background-dominated; levels dealt
# so that every level occurs): 15 images per photo. Statistical power comes from the number of
# photos, not from variants of one photo (miqa/database/variants.py).
# Labels: EfficientNet-Lite1 + Lite2, composite = 0.5 consistency + 0.5 accuracy; a photo with no
# fitting ImageNet-1k class (its table row says why) gets consistency-only labels (accuracy nan;
# its composite label is its consistency, see MIQDDataset).
#   python tools/build_miqd.py configs/build/miqd_mini_demo.py --workers 2
_base_ = ['./miqd_mini.py']
variants = dict(distortions=5, per_distortion=3)
max_short_side = 256
out_root = 'data/miqd_mini_demo'
