# MIQD-mini, demo subset: the embedded default that `python tools/train.py configs/demo/ra_miqa_mini.py`
# builds on first use (cached afterwards). Same sources, labelling machines, formulas, sizes and
# seed as configs/build/miqd_mini.py, but 4 of the 10 distortions, one per category:
#   digital: jpeg_compression, blur: defocus_blur, environmental: fog, noise: gaussian_noise
# -> 4 x 25 = 100 variants per source (all 5 uniform levels + 20 region-aware), 41 sources with
# opencv-doc and darknet installed (16 without: pip photos only) -> 4,100 images.
# Its own output folder: the builder's parameter guard refuses to mix it with the full build.
#   python tools/build_miqd.py configs/build/miqd_mini_demo.py --workers 2
_base_ = ['./miqd_mini.py']
distortions = ['jpeg_compression', 'defocus_blur', 'fog', 'gaussian_noise']
max_short_side = 320        # sources downscaled (INTER_AREA) to a short side of at most 320 px
out_root = 'data/miqd_mini_demo'
