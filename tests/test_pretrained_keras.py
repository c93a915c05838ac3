"""Keras DenseNet-121 (the Keras learned-resizer example's backbone): live logit parity.

Keras ships with TensorFlow, so the source framework itself runs here: randomly initialised
`keras.applications.DenseNet121`, BatchNorm statistics perturbed, saved as `.weights.h5`
and `.keras`, imported with `pretrained.load`, logits compared.
"""

import jax
import numpy as np
import pytest

from resize_jax.models import pretrained

keras = pytest.importorskip("keras")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:keras.*")


@pytest.fixture(scope="module")
def keras_densenet(tmp_path_factory):
    model = keras.applications.DenseNet121(
        weights=None, classifier_activation=None, input_shape=(72, 88, 3)
    )
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, gamma.shape).astype(np.float32),
                    rng.normal(0.0, 0.2, beta.shape).astype(np.float32),
                    rng.normal(0.0, 0.2, mean.shape).astype(np.float32),
                    rng.uniform(0.5, 2.0, var.shape).astype(np.float32),
                ]
            )
    images = rng.normal(0.0, 1.0, (2, 72, 88, 3)).astype(np.float32)
    logits = np.asarray(model(images, training=False))
    folder = tmp_path_factory.mktemp("keras")
    model.save_weights(str(folder / "densenet.weights.h5"))
    model.save(str(folder / "densenet.keras"))
    return folder, images, logits


def test_keras_densenet121_logits_match(keras_densenet):
    folder, images, expected = keras_densenet
    model, variables = pretrained.load(
        "densenet121", str(folder / "densenet.weights.h5"), source="keras"
    )
    assert model.bn_epsilon == pytest.approx(1.001e-5) and model.bn_momentum == 0.99
    got, _ = jax.jit(lambda v, x: model.apply(v, x, train=False))(variables, images)
    error = np.abs(np.asarray(got) - expected).max() / np.abs(expected).max()
    assert error < 1e-4, error
    # The .keras archive holds the same weights file.
    _, from_archive = pretrained.load("densenet121", str(folder / "densenet.keras"), source="keras")
    jax.tree.map(np.testing.assert_array_equal, from_archive, variables)


def test_keras_file_for_another_architecture_is_refused(keras_densenet):
    folder, _, _ = keras_densenet
    with pytest.raises(ValueError, match="weighted Keras layers by class"):
        pretrained.load(
            "densenet121",
            str(folder / "densenet.weights.h5"),
            source="keras",
            block_sizes=(6, 12, 32, 32),  # DenseNet-169.
        )
