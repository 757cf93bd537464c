# Analysis of the embedded default: configs/demo/ra_miqa_mini.py without the confidence inputs
# (the head reads the frozen Lite0 features and the region token only). It tells what the learned
# head adds on its own: the demo's RA-MIQA reads Lite0's softmax statistics, whose max probability
# alone is the table's zero-training row (Lite0-MSP).
#   python tools/train.py configs/demo/ra_miqa_mini_no_confidence.py
_base_ = ['./ra_miqa_mini.py']
method = 'RA-MIQA (Lite0, no confidence inputs)'
model = dict(confidence_inputs=())
