
import numpy as np
import pytest
from model_checks import check_outputs

from tf_twohead import models
from tf_twohead.core.defaults import WIDTHS
from tf_twohead.models.shufflenet import STAGE_OUT_CHANNELS

# torchvision's shufflenet_v2_x*_0 parameter counts (1000 classes; BN statistics are buffers).
TORCHVISION_PARAMS = {0.5: 1_366_792, 1.0: 2_278_604, 1.5: 3_503_624, 2.0: 7_393_996}


def trainable(model):
    return sum(int(np.prod(v.shape)) for v in model.trainable_weights)


@pytest.mark.parametrize("width", sorted(TORCHVISION_PARAMS))
def test_backbone_matches_torchvision_parameter_count(width):
    assert trainable(models.shufflenet_v2(width, (64, 64, 3))) == TORCHVISION_PARAMS[width]


def test_config_widths_are_the_stage_table():
    assert tuple(sorted(STAGE_OUT_CHANNELS)) == WIDTHS


def test_layer_names_mirror_torchvision():
    names = {layer.name for layer in models.shufflenet_v2(0.5, (64, 64, 3)).layers}
    for expected in ("conv1_0", "conv1_1", "maxpool", "stage2_0_branch1_0",
                     "stage2_0_branch2_5", "stage4_3_branch2_6", "conv5_0", "fc"):
        assert expected in names


@pytest.mark.parametrize("width", WIDTHS)
def test_two_head_outputs_for_all_widths(width):
    model = models.build("two_head", 64, width, head_width=32)
    check_outputs(model, ["main", "aux"], [1, 1])


def test_reference_parameter_totals():
    # DESIGN.md: x0.5 @ 1024-wide heads, counting BN statistics (Keras count_params).
    assert models.build("two_head", 64).count_params() == 552_498
    assert models.build("softmax", 64).count_params() == 352_819


def test_n_head_and_softmax_outputs():
    three = models.build("two_head", 64, heads={"screen": [2], "doc": [0], "other": [1]},
                         head_width=16)
    check_outputs(three, ["screen", "doc", "other"], [1, 1, 1])
    softmax = models.build("softmax", 64, head_width=16, num_classes=3)
    _, out = check_outputs(softmax, ["probs"], [3])
    np.testing.assert_allclose(np.asarray(out["probs"]).sum(axis=1), 1.0, atol=1e-5)


def test_each_head_can_have_its_own_width():
    model = models.build("two_head", 32, head_width=64, head_widths={"aux": 8})
    assert model.get_layer("main_conv").kernel.shape[-1] == 64
    assert model.get_layer("aux_conv").kernel.shape[-1] == 8
    # 56 fewer aux channels: each had a 192-input 1x1 kernel, 4 BN values, 1 dense weight.
    same = models.build("two_head", 32, head_width=64)
    assert same.count_params() - model.count_params() == 56 * (192 + 4 + 1)
    with pytest.raises(ValueError, match="head_widths"):
        models.build("two_head", 32, head_widths={"other": 8})


def test_normalisation_is_inside_the_model():
    import keras

    model = models.build("two_head", 32, head_width=8)
    norm = keras.Model(model.inputs[0], model.get_layer("normalize").output)
    x = np.zeros((1, 32, 32, 3), np.uint8) + np.array([124, 116, 104], np.uint8)  # ~ mean
    assert np.abs(np.asarray(norm(x))).max() < 0.02
    white = np.asarray(norm(np.full((1, 32, 32, 3), 255, np.uint8)))[0, 0, 0]
    np.testing.assert_allclose(white, [(1 - 0.485) / 0.229, (1 - 0.456) / 0.224,
                                       (1 - 0.406) / 0.225], rtol=1e-5)


def test_invalid_arguments_say_what_was_received():
    with pytest.raises(ValueError, match="Received: width=0.7"):
        models.build("two_head", 64, 0.7)
    with pytest.raises(ValueError, match="Received: kind='three'"):
        models.build("three", 64)
    with pytest.raises(ValueError, match="Received: img_size=16"):
        models.build("two_head", 16)


def test_stage_repeats_make_a_shallower_network_and_are_checked():
    """torchvision's `ShuffleNetV2(stages_repeats, ...)`: units per stage from the config."""
    import tf_twohead as tt

    full = models.build("two_head", 64, head_width=32)
    shallow = models.build("two_head", 64, head_width=32, stage_repeats=(1, 2, 1))
    names = {layer.name for layer in shallow.layers}
    assert {"stage2_0_concat", "stage3_1_concat", "stage4_0_concat"} <= names
    assert not {"stage2_1_concat", "stage3_2_concat", "stage4_1_concat"} & names
    assert shallow.count_params() < full.count_params()
    assert models.build("two_head", 64, head_width=32,
                        stage_repeats=(4, 8, 4)).count_params() == full.count_params()
    cfg = tt.load_config(None, ["model.stage_repeats=[1,2,1]", "data.img_size=64",
                                "model.head_width=32"])
    assert tt.build_model(cfg).count_params() == shallow.count_params()
    for override, why in [("model.stage_repeats=[0,1,1]", "three unit counts of 1 to 16"),
                          ("model.stage_repeats=[1,1]", "three unit counts"),
                          ("model.stage_repeats=[1,1,1]\nmodel.pretrained=imagenet",
                           "torchvision's \\[4, 8, 4\\] with")]:
        with pytest.raises(tt.ConfigError, match=why):
            tt.load_config(None, override.split("\n"))
