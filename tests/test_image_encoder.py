"""trl_ext.inference.image_encoder: a user-supplied CLIP-like encoder loaded by path, checked against direct calls of
the transformers model on hand-preprocessed pixels."""

import numpy as np
import pytest
import torch

from trl_ext.inference import load_dual_encoder
from trl_ext.inference.image_encoder import CLIP_MEAN, CLIP_STD, ImagePreprocessing, image_tensor
from trl_ext.models import ModelLoadError
from trl_ext.testing import save_tiny_dual_encoder, save_tiny_model


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return str(save_tiny_dual_encoder(tmp_path_factory.mktemp("enc") / "clip", kind="clip"))


@pytest.fixture(scope="module")
def siglip_dir(tmp_path_factory):
    return str(save_tiny_dual_encoder(tmp_path_factory.mktemp("enc") / "siglip", kind="siglip"))


def _checker_image(size: int = 32) -> np.ndarray:
    img = np.zeros((size, size, 3), np.uint8)
    img[: size // 2, :, 0] = 255
    img[:, : size // 3, 2] = 128
    return img


def test_clip_embeddings_match_the_model_on_hand_preprocessed_pixels(clip_dir):
    from transformers import AutoTokenizer, CLIPModel

    enc = load_dual_encoder(clip_dir, device="cpu")
    model, tok = CLIPModel.from_pretrained(clip_dir).eval(), AutoTokenizer.from_pretrained(clip_dir)
    img = _checker_image()  # already 32x32: resize and crop are identities
    pixels = (img.astype(np.float64) / 255 - np.array(CLIP_MEAN)) / np.array(CLIP_STD)
    pixels = torch.tensor(pixels.transpose(2, 0, 1)[None], dtype=torch.float32)
    with torch.no_grad():
        u = model.get_image_features(pixel_values=pixels).pooler_output[0]
        ids = tok(["a red square", "a cat"], padding=True, return_tensors="pt")
        t = model.get_text_features(**ids).pooler_output
    assert torch.allclose(enc.encode_images([img])[0], u / u.norm(), atol=1e-5)
    assert torch.allclose(enc.encode_texts(["a red square", "a cat"]), t / t.norm(dim=-1, keepdim=True), atol=1e-5)
    assert load_dual_encoder(clip_dir, device="cpu") is enc  # loaded once per process


def test_embeddings_have_unit_norm_and_long_texts_are_truncated(clip_dir, siglip_dir):
    for path in (clip_dir, siglip_dir):
        enc = load_dual_encoder(path, device="cpu")
        texts = ["a dog", "word " * 200, ""]
        t, cut = enc.encode_texts(texts, return_truncated=True)
        assert cut == [False, True, False]
        assert torch.allclose(t.norm(dim=-1), torch.ones(3), atol=1e-4)
        u = enc.encode_images([_checker_image(), _checker_image(48)[:40], torch.rand(3, 20, 30)], batch_size=2)
        assert u.shape == (3, t.shape[1]) and torch.allclose(u.norm(dim=-1), torch.ones(3), atol=1e-4)


def test_siglip_pads_to_max_length_as_trained(siglip_dir):
    enc = load_dual_encoder(siglip_dir, device="cpu")
    assert enc.text_padding == "max_length" and enc.text_max_length == 16
    inputs, _ = enc.tokenize(["a dog"])
    assert inputs["input_ids"].shape == (1, 16)


def test_preprocessing_resizes_the_short_side_then_center_crops():
    prep = ImagePreprocessing(size=4, crop=(4, 4), mean=(0.0,) * 3, std=(1.0,) * 3, rescale_factor=1.0)
    x = torch.zeros(3, 4, 8)
    x[:, :, 2:6] = 1.0  # the middle half of the columns: the crop keeps exactly it after a 1x resize
    out = prep(x)
    assert out.shape == (3, 4, 4) and torch.equal(out, torch.ones(3, 4, 4))
    squash = ImagePreprocessing(size=(2, 2), crop=None, mean=(0.5,) * 3, std=(0.5,) * 3, rescale_factor=1 / 255)
    assert torch.allclose(squash(torch.full((3, 5, 7), 255.0)), torch.ones(3, 2, 2), atol=1e-5)


def test_image_inputs_in_any_layout_and_garbage_refused():
    hwc, eight_bit = image_tensor(np.zeros((5, 7, 3), np.uint8))
    assert hwc.shape == (3, 5, 7) and eight_bit
    gray, _ = image_tensor(np.zeros((5, 7), np.float32))
    assert gray.shape == (3, 5, 7)
    for bad in (np.zeros((2, 2, 2, 3)), np.zeros((5, 7, 9)), np.zeros((0, 4, 3)), "missing.png", 3, None):
        with pytest.raises((ValueError, TypeError)):
            image_tensor(bad)
    with pytest.raises(ValueError, match="non-finite"):
        image_tensor(np.full((4, 4, 3), np.nan, np.float32))


def test_not_a_dual_encoder_and_missing_folder_are_clear_errors(tmp_path):
    llama = save_tiny_model(tmp_path / "llama")
    with pytest.raises(ModelLoadError, match="not a dual encoder"):
        load_dual_encoder(str(llama), device="cpu")
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_dual_encoder(str(tmp_path / "nothing" / "here"), device="cpu")
