"""Frozen graphs for the tests, with the real node names and shapes.

The real inception5h and MobileNet v1 graphs are downloads (not available to
the tests), so these stand-ins keep their input node, layer names, layer shapes
at 224x224 and logits, built from cheap ops (strided pooling, depthwise convs,
1x1 convs on a few channels, small constant weights): a few hundred kB each.
"""

from __future__ import annotations

import os
import pathlib

import numpy as np
import tensorflow as tf

#: inception5h layers: (name, depth, pooled by 2 before it).
GOOGLENET = [
    ("mixed3a", 256, False),
    ("mixed3b", 480, False),
    ("mixed4a", 508, True),
    ("mixed4b", 512, False),
    ("mixed4c", 512, False),
    ("mixed4d", 528, False),
    ("mixed4e", 832, False),
    ("mixed5a", 832, True),
    ("mixed5b", 1024, False),
]

#: MobileNet v1 blocks: (index, stride of the depthwise conv, pointwise depth).
MOBILENET = [(1, 1, 64), (2, 2, 128), (3, 1, 128), (4, 2, 256), (5, 1, 256)]
MOBILENET += [(6, 2, 512)] + [(i, 1, 512) for i in range(7, 12)]
MOBILENET += [(12, 2, 1024), (13, 1, 1024)]
MOBILENET_PREFIX = "MobilenetV1/MobilenetV1/"
MOBILENET_12D = MOBILENET_PREFIX + "Conv2d_12_depthwise/Relu6"

PHOTO = "0a8d36f893911e09a257cfaea8a8543a.1x.224x224.png"
CAVLIB_DATA = pathlib.Path(__file__).parents[1] / "data" / "cavlib"

#: The real graphs, when the environment points to them (read before the
#: autouse fixture below hides the variables from every test).
REAL_GRAPHS = {
    name: os.environ.get(f"KERAS_INTERP_{name.upper()}_PATH")
    for name in ("googlenet", "mobilenet")
}


def _weights(rng: np.random.RandomState, *shape: int, scale: float) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def googlenet_function():
    """A tf.function with inception5h's names: input `input` (any size),
    `mixed3a`..`mixed5b` (Concat of two ReLU towers), `softmax2_pre_activation`
    (1008), `softmax2`, `output2`."""
    rng = np.random.RandomState(0)
    weights, channels = {}, 3
    for name, depth, _ in GOOGLENET:
        width = min(channels, 8)
        half = depth // 2
        weights[name] = (
            _weights(rng, 1, 1, width, half, scale=1.1 / width**0.5),
            _weights(rng, 1, 1, width, depth - half, scale=1.1 / width**0.5),
        )
        channels = depth
    weights["logits"] = _weights(rng, 32, 1008, scale=0.2)
    weights["bias"] = _weights(rng, 1008, scale=0.1)
    weights["input"] = np.float32([[0.02, 0.01, -0.01], [0.01, 0.02, 0.01]])

    spec = tf.TensorSpec([None, None, None, 3], tf.float32, name="input")

    @tf.function(input_signature=[spec])
    def net(x):
        # Centre the [-117, 138] input the way the first layers of GoogLeNet do.
        h = tf.nn.avg_pool2d(x, 8, 8, "SAME") * 0.02 + 0.3
        for name, _, pooled in GOOGLENET:
            if pooled:
                h = tf.nn.max_pool2d(h, 3, 2, "SAME")
            source = h[..., :8]
            a, b = (tf.constant(w) for w in weights[name])
            one = tf.nn.relu(tf.nn.conv2d(source, a, 1, "SAME"))
            pooled_source = tf.nn.max_pool2d(source, 3, 1, "SAME")
            two = tf.nn.relu(tf.nn.conv2d(pooled_source, b, 1, "SAME"))
            h = tf.concat([one, two], axis=3, name=name)
        pool = tf.nn.avg_pool2d(h, 7, 1, "VALID", name="avgpool0")
        flat = tf.reshape(pool, [-1, 1024])[:, :32]
        matmul = tf.matmul(flat, tf.constant(weights["logits"]))
        logits = tf.nn.bias_add(
            matmul, tf.constant(weights["bias"]), name="softmax2_pre_activation"
        )
        return tf.identity(tf.nn.softmax(logits, name="softmax2"), name="output2")

    return net


def mobilenet_function():
    """A tf.function with MobileNet v1's names: input `input` (B, 224, 224, 3),
    `MobilenetV1/MobilenetV1/Conv2d_{0..13}[_depthwise|_pointwise]/Relu6`,
    logits `MobilenetV1/Logits/SpatialSqueeze` (1001)."""
    rng = np.random.RandomState(1)
    first = _weights(rng, 3, 3, 3, 32, scale=0.4)
    blocks, channels = [], 32
    for index, stride, depth in MOBILENET:
        depthwise = _weights(rng, 3, 3, channels, 1, scale=0.35)
        pointwise = _weights(rng, 1, 1, 8, depth, scale=0.6)
        blocks.append((index, stride, depthwise, pointwise))
        channels = depth
    classifier = _weights(rng, 1, 1, 32, 1001, scale=0.5)

    spec = tf.TensorSpec([None, 224, 224, 3], tf.float32, name="input")

    @tf.function(input_signature=[spec])
    def net(x):
        with tf.name_scope(MOBILENET_PREFIX + "Conv2d_0/"):
            h = tf.nn.relu6(tf.nn.conv2d(x, tf.constant(first), 2, "SAME"), "Relu6")
        for index, stride, depthwise, pointwise in blocks:
            with tf.name_scope(f"{MOBILENET_PREFIX}Conv2d_{index}_depthwise/"):
                strides = [1, stride, stride, 1]
                h = tf.nn.depthwise_conv2d(h, tf.constant(depthwise), strides, "SAME")
                h = tf.nn.relu6(h, name="Relu6")
            with tf.name_scope(f"{MOBILENET_PREFIX}Conv2d_{index}_pointwise/"):
                h = tf.nn.conv2d(h[..., :8], tf.constant(pointwise), 1, "SAME")
                h = tf.nn.relu6(h, name="Relu6")
        with tf.name_scope("MobilenetV1/Logits/"):
            h = tf.nn.avg_pool2d(h, 7, 1, "VALID", name="AvgPool_1a")
            h = tf.nn.conv2d(h[..., :32], tf.constant(classifier), 1, "VALID")
            logits = tf.squeeze(h, [1, 2], name="SpatialSqueeze")
        with tf.name_scope("MobilenetV1/Predictions/"):
            return tf.nn.softmax(logits, name="Softmax")

    return net


def write_graph(function, path: pathlib.Path) -> pathlib.Path:
    """Write the graph of a constant-only tf.function as a frozen `.pb`."""
    graph_def = function.get_concrete_function().graph.as_graph_def()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(graph_def.SerializeToString())
    return path
