# MIQD-mini for CI: 6 pip-only photos (scikit-image, scikit-learn, matplotlib), 3 fast
# distortions, short side 224: 6 x 75 = 450 labelled images in 2-3 minutes on 2 cores.
#   python tools/build_miqd.py configs/build/miqd_mini_ci.py --workers 2
_base_ = ['./miqd_mini.py']
sources = dict(
    include=('pip',),
    src_ids=['sk_chelsea', 'sk_coffee', 'sk_rocket', 'sk_motorcycle_left', 'skl_china', 'mpl_grace_hopper'])
distortions = ['contrast', 'gaussian_noise', 'defocus_blur']
max_short_side = 224
out_root = 'data/miqd_mini_ci'
