# MIQD-mini: a classification MIQD built from the real photos that ship with pip and Debian
# packages (miqa/database/data/miqd_mini_sources.csv: 399 photos and crops in 365 photo groups,
# hand-annotated ImageNet-1k classes; `make photos` installs the Debian ones), all 250 variants
# per photo (the MIQD-2.5M recipe): about 99,000 images, several hours on 2 CPU cores. The demo
# uses a stratified subset of the variants instead (configs/build/miqd_mini_demo.py).
#   python tools/build_miqd.py configs/build/miqd_mini.py --workers 2
# Photos that are not installed are left out with a warning naming the package to install.
task = 'cls'
sources = dict(
    type='miqd_mini',   # miqa.database.sources.collect_miqd_mini
    include=('pip', 'debian'),
    min_short_side=128)
distortions = None          # all 10 MIQD distortions, spec order
max_short_side = 320        # sources downscaled (INTER_AREA) to a short side of at most 320 px
seed = 0
# Labelling machines: EfficientNet-Lite1 + Lite2 (pip weight packages), NOT Lite0: the quality
# models use Lite0 as a backbone, and a predictor must not read the labeller's own features.
# Formulas and aggregation: miqa/database/labels.py (uniform weights over the two machines).
labeller = dict(
    type='MachineLabeller',
    task='cls',
    machines=[
        dict(type='EfficientNetLite', variant='lite1', batch_size=8, num_threads=1),
        dict(type='EfficientNetLite', variant='lite2', batch_size=8, num_threads=1),
    ],
    consistency='prob_overlap',   # sum_k min(p_k, q_k) = 1 - TV(clean, degraded)
    accuracy='gt_mass',           # probability on the acceptable ImageNet classes
    missing_annotation='nan',     # photos without a fitting class: consistency-only labels
    weights=None)                 # uniform
out_root = 'data/miqd_mini'
