"""TensorFlow parity of the detector machines (run once; TensorFlow is not a miqa dependency).

    python -m venv /tmp/tfenv && /tmp/tfenv/bin/pip install "tensorflow-cpu==2.21.*" pillow
    python benchmarks/parity_detectors_tf.py --tf-python /tmp/tfenv/bin/python [--model-dir DIR]

The script starts itself under the TensorFlow interpreter (``--tf-side OUT.npz``), which loads each
``model.json`` into a ``tf.Graph`` with its own reader (the JSON nodes as a ``GraphDef``, the
``Const`` values from the shards, the fused convolutions split into TF's ``Conv2D`` /
``DepthwiseConv2dNative`` + ``BiasAdd`` + activation), resizes every photo with
``tf.compat.v1.image.resize_bilinear`` (tfjs' ``resizeBilinear`` defaults) and runs the graphs.
Back in miqa's environment it compares, per detector, the maximum absolute differences of:
the preprocessed input; the raw graph outputs on TF's own input (batch 1); the raw outputs of the
machine's own pipeline; the final boxes (image pixels), scores and labels (the machine's
post-processing applied to TF's raw outputs).

Photos: the darknet and OpenCV samples of Debian's ``darknet`` / ``opencv-doc`` packages.
"""
import argparse
import base64
import copy
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

DARKNET, OPENCV = '/usr/share/darknet/data', '/usr/share/doc/opencv-doc/examples/data'
PHOTOS = [f'{DARKNET}/{n}.jpg' for n in ('dog', 'horses', 'person', 'kite', 'eagle', 'giraffe')] + \
    [f'{OPENCV}/{n}' for n in ('messi5.jpg', 'fruits.jpg', 'apple.jpg', 'orange.jpg', 'aero3.jpg',
                               'licenseplate_motion.jpg', 'home.jpg', 'squirrel_cls.jpg', 'baboon.jpg',
                               'building.jpg')]
CENTERNET_OUT = ['tower_0/detections', 'tower_0/keypoints', 'tower_0/wh']


# ---------------------------------------------------------------- the TensorFlow side (own interpreter)
def tf_side(model_dir: Path, photos, out: Path) -> None:
    import tensorflow as tf
    from google.protobuf import json_format
    from PIL import Image

    dtypes = {'DT_FLOAT': np.float32, 'DT_INT32': np.int32, 'DT_INT64': np.int64, 'DT_BOOL': np.bool_}
    fused_base = {'_FusedConv2D': 'Conv2D', 'FusedDepthwiseConv2dNative': 'DepthwiseConv2dNative'}

    def weights(spec, folder):
        values = {}
        for group in spec['weightsManifest']:
            data, offset = b''.join((folder / p).read_bytes() for p in group['paths']), 0
            for w in group['weights']:
                n = int(np.prod(w['shape'])) if w['shape'] else 1
                q = (w.get('quantization') or {}).get('dtype')
                stored = {'float16': np.float16, 'uint8': np.uint8, 'uint16': np.uint16}.get(q) or \
                    {'float32': np.float32, 'int32': np.int32, 'bool': np.bool_}[w['dtype']]
                a = np.frombuffer(data, stored, n, offset)
                if q in ('uint8', 'uint16'):
                    a = a.astype(np.float64) * w['quantization']['scale'] + w['quantization']['min']
                offset += n * np.dtype(stored).itemsize
                values[w['name']] = a.reshape(w['shape'])
        return values

    def split_fused(node):
        attr = node['attr']
        fused = [base64.b64decode(v).decode() for v in attr['fused_ops']['list']['s']]
        assert fused[0] == 'BiasAdd' and len(fused) <= 2, fused
        keep = ('strides', 'padding', 'data_format', 'dilations', 'explicit_paddings', 'T')
        conv_attr = {k: v for k, v in attr.items() if k in keep}
        name, (x, w, b) = node['name'], node['input'][:3]
        bias_name = name if len(fused) == 1 else name + '/_bias'
        parts = [dict(name=name + '/_conv', op=fused_base[node['op']], input=[x, w], attr=conv_attr),
                 dict(name=bias_name, op='BiasAdd', input=[name + '/_conv', b],
                      attr={'T': attr['T'], 'data_format': attr['data_format']})]
        if len(fused) == 2:
            parts.append(dict(name=name, op=fused[1], input=[name + '/_bias'], attr={'T': attr['T']}))
        return parts

    def session(model_json):
        spec = json.loads(model_json.read_text())
        values = weights(spec, model_json.parent)
        graph_def = tf.compat.v1.GraphDef()
        for raw in spec['modelTopology']['node']:
            node = copy.deepcopy(raw)
            node.pop('device', None)
            node['attr'] = {k: v for k, v in node.get('attr', {}).items() if not k.startswith('_grappler')}
            if node['op'] == 'Const':
                dtype = dtypes[node['attr']['dtype']['type']]
                proto = tf.make_tensor_proto(values[node['name']].astype(dtype), dtype=tf.as_dtype(dtype))
                node['attr']['value'] = {'tensor': json_format.MessageToDict(proto)}
            for part in (split_fused(node) if node['op'] in fused_base else [node]):
                graph_def.node.append(json_format.ParseDict(part, tf.compat.v1.NodeDef()))
        graph = tf.Graph()
        with graph.as_default():
            tf.graph_util.import_graph_def(graph_def, name='')
        config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=2, inter_op_parallelism_threads=1)
        return graph, tf.compat.v1.Session(graph=graph, config=config), spec

    def run(graph, sess, feeds, outputs):
        fetch = [graph.get_tensor_by_name(o + ':0') for o in outputs]
        feed = {graph.get_tensor_by_name(k + ':0'): v for k, v in feeds.items()}
        return dict(zip(outputs, sess.run(fetch, feed)))

    def resize(image, size):
        x = tf.constant(image[None].astype(np.float32))
        return tf.compat.v1.image.resize_bilinear(x, [size, size], align_corners=False,
                                                  half_pixel_centers=False).numpy()

    cn_graph, cn_sess, _ = session(model_dir / 'centernet.json')
    nd_graph, nd_sess, nd_spec = session(model_dir / 'nanodet.json')
    nd_out = [k.replace(':0', '') for k in nd_spec['signature']['outputs']]
    result = {'tf_version': np.array(tf.__version__)}
    for i, path in enumerate(photos):
        image = np.asarray(Image.open(path).convert('RGB'))
        result[f'{i}/image'], result[f'{i}/cn_input'] = image, resize(image, 512)
        nchw = np.transpose(resize(image, 416) / np.float32(255), (0, 3, 1, 2))
        result[f'{i}/nd_input'] = nchw.astype(np.float32)
        cn_feed = {'tower_0/images': result[f'{i}/cn_input']}
        for k, v in run(cn_graph, cn_sess, cn_feed, CENTERNET_OUT).items():
            result[f'{i}/cn/{k}'] = v
        for k, v in run(nd_graph, nd_sess, {'input_1': result[f'{i}/nd_input']}, nd_out).items():
            result[f'{i}/nd/{k}'] = v
    np.savez_compressed(out, **result)


# ---------------------------------------------------------------- miqa's side
def compare(data, count: int, model_dir) -> dict:
    import torch

    from miqa.database.detectors import CenterNet, NanoDet

    images = [data[f'{i}/image'] for i in range(count)]
    report = {}
    for key, machine in (('cn', CenterNet(model_dir=model_dir, device='cpu', num_threads=2)),
                         ('nd', NanoDet(model_dir=model_dir, device='cpu', num_threads=2)),
                         ('nd', NanoDet(model_dir=model_dir, device='cpu', num_threads=2, box_decode='human',
                                        name='nanodet (human decode)'))):
        raw_names = CENTERNET_OUT if key == 'cn' else machine.outputs
        stats = dict(input=0.0, graph_on_tf_input={}, pipeline={}, boxes=0.0, scores=0.0, labels_equal=True,
                     same_count=True, detections=0)
        with machine.running():
            for i in range(count):
                tf_input = data[f'{i}/{key}_input']
                mine = machine.network_input(machine.resize(images[i])[None])[0].numpy()
                stats['input'] = max(stats['input'], float(np.abs(mine - tf_input).max()))
                feed = {machine.graph.input_names[0]: torch.from_numpy(tf_input)}
                outs = machine.graph.run(feed, raw_names)
                for k, v in outs.items():
                    diff = float(np.abs(v.numpy() - data[f'{i}/{key}/{k}']).max())
                    stats['graph_on_tf_input'][k] = max(stats['graph_on_tf_input'].get(k, 0.0), diff)
                for k, v in machine.raw_outputs([images[i]]).items():
                    diff = float(np.abs(v[0] - data[f'{i}/{key}/{k}']).max())
                    stats['pipeline'][k] = max(stats['pipeline'].get(k, 0.0), diff)
        for i, got in enumerate(machine.predict(images)):
            raw = {k: data[f'{i}/{key}/{k}'] for k in machine.outputs}
            ref = machine.postprocess(raw, images[i].shape[:2])
            stats['detections'] += len(ref['scores'])
            if len(ref['scores']) != len(got['scores']):
                stats['same_count'] = False
            elif len(ref['scores']):
                stats['boxes'] = max(stats['boxes'], float(np.abs(ref['boxes'] - got['boxes']).max()))
                stats['scores'] = max(stats['scores'], float(np.abs(ref['scores'] - got['scores']).max()))
                stats['labels_equal'] &= bool(np.array_equal(ref['labels'], got['labels']))
        report[machine.name] = stats
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--tf-python', help='the Python of a venv with tensorflow-cpu (and pillow)')
    parser.add_argument('--model-dir', default=None, help='default: $MIQA_HOME/weights/human-models')
    parser.add_argument('--tf-side', help=argparse.SUPPRESS)
    args = parser.parse_args()
    photos = [p for p in PHOTOS if os.path.isfile(p)]
    if args.tf_side:
        tf_side(Path(args.model_dir), photos, Path(args.tf_side))
        return
    if not args.tf_python:
        parser.error('--tf-python is required')
    from miqa.database.human_models import human_models_dir, locate_human_model

    model_dir = Path(args.model_dir or human_models_dir())
    for name in ('centernet', 'nanodet'):
        locate_human_model(name, model_dir)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / 'tf.npz'
        command = [args.tf_python, __file__, '--tf-side', str(out), '--model-dir', str(model_dir)]
        subprocess.run(command, check=True)
        data = dict(np.load(out))
    print(f'{len(photos)} photos; TensorFlow {data["tf_version"]}')
    print(json.dumps(compare(data, len(photos), model_dir), indent=1))


if __name__ == '__main__':
    sys.exit(main())
