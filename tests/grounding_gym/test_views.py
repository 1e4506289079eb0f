"""Views: pixel budget, reference crop+resize, lazy and reduced decoding, hostile images."""

from __future__ import annotations

import importlib.util
import io
import math
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw, ImageFile

from grounding_gym.data import Sample
from grounding_gym.envs.grounded_vqa import GroundedVQAEnv
from grounding_gym.geometry import Box
from grounding_gym.views import (
    ImageCache,
    ImageHandle,
    ImageLoadError,
    ImageTooLargeError,
    fit_to_budget,
    linear_prefilter,
    reduction_factor,
    render_view,
    render_view_opencv,
    source_scale,
    to_rgb,
)

MIN_PSNR_REDUCED_DECODE = 30.0  # dB; the tolerance documented in docs/benchmarks.md
MIN_PSNR_FAST_RESIZE = 30.0  # dB; likewise (fast_resize, upsample_first_view)
MIN_PSNR_OPENCV = {"scene": 40.0, "text": 27.0}  # dB; likewise (resize_backend="opencv")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def scene(size: tuple[int, int], seed: int = 0) -> Image.Image:
    """A photo-like test scene: smooth gradient plus shapes of several sizes."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([(xx * 255 // w), (yy * 255 // h), ((xx + yy) * 127 // (w + h))], axis=-1)
    image = Image.fromarray(base.astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(60):
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        r = int(rng.integers(5, max(6, w // 10)))
        draw.ellipse(
            [x - r, y - r, x + r, y + r], fill=tuple(int(c) for c in rng.integers(0, 256, 3))
        )
    return image


def text_scene(size: tuple[int, int], seed: int = 0) -> Image.Image:
    """Sharp text-like content: black one-pixel strokes of PIL's default font on white, lines
    12 px apart (the worst case for any resampler other than the reference's)."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(image)
    for y in range(0, size[1], 12):
        line = "".join(chr(int(c)) for c in rng.integers(33, 127, size[0] // 5))
        draw.text((int(rng.integers(0, 8)), y), line, fill=(0, 0, 0))
    return image


SOURCES = {"scene": scene((900, 700), seed=2), "text": text_scene((900, 700))}


def forbid_decoding(monkeypatch, why: str) -> None:
    """Make any pixel decoding (in-memory or file-backed images) fail the test."""

    def fail(self, *args, **kwargs):
        pytest.fail(why)

    monkeypatch.setattr(Image.Image, "load", fail)
    monkeypatch.setattr(ImageFile.ImageFile, "load", fail)


def encode(image: Image.Image, fmt: str = "JPEG", **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


@settings(max_examples=1000, deadline=None)
@given(w=st.floats(1, 20000), h=st.floats(1, 20000), patch=st.sampled_from([None, 14, 28]))
def test_fit_to_budget_properties(w, h, patch):
    min_pixels, max_pixels = 4 * 28 * 28, 1280 * 28 * 28
    vw, vh = fit_to_budget(w, h, min_pixels, max_pixels, patch)
    factor = patch or 1
    assert vw % factor == 0 and vh % factor == 0 and vw >= factor and vh >= factor
    assert vw * vh <= max_pixels
    if max(w / h, h / w) < 50:  # extreme strips are capped by the one-patch minimum side
        assert vw * vh >= min_pixels
    # Aspect kept up to rounding: one scale s puts each side within a patch of its value
    # (a side clamped up to one patch only bounds s from above).
    lo = max(0.0 if vw == factor else (vw - factor) / w, 0.0 if vh == factor else (vh - factor) / h)
    hi = min((vw + factor) / w, (vh + factor) / h)
    assert lo <= hi * (1 + 1e-9)


def test_render_view_is_pil_resize_with_box():
    image = scene((800, 600))
    box = Box(100.25, 50.5, 420.75, 300.0)
    view = render_view(image, box, (224, 168))
    expected = np.asarray(image.resize((224, 168), Image.Resampling.BICUBIC, box=box.as_tuple()))
    np.testing.assert_array_equal(view, expected)
    assert view.flags["C_CONTIGUOUS"] and view.shape == (168, 224, 3)


@pytest.mark.slow
def test_size_reads_header_only(tmp_path, monkeypatch):
    path = tmp_path / "big.jpg"
    scene((3000, 2000)).save(path, quality=90)
    handle = ImageHandle(str(path))
    forbid_decoding(monkeypatch, "decoded while reading size")
    assert handle.size == (3000, 2000) and not handle.is_decoded


@settings(max_examples=60, deadline=None)
@given(
    content=st.sampled_from(sorted(SOURCES)),
    shrink=st.floats(0.5, 1.99),  # what the env sends to OpenCV (OPENCV_MAX_SHRINK): upscales too
    view=st.tuples(st.integers(28, 320), st.integers(28, 320)),
    corner=st.tuples(st.floats(0, 1), st.floats(0, 1)),  # 0 or 1: the box touches the edge
)
def test_opencv_view_within_psnr_of_the_reference(content, shrink, view, corner):
    """`render_view_opencv` (resize_backend="opencv") stays within the documented PSNR of the
    reference `render_view` for any sub-pixel box, on photo-like scenes and on sharp text."""
    pytest.importorskip("cv2")
    image = SOURCES[content]
    w, h = min(image.width, view[0] * shrink), min(image.height, view[1] * shrink)
    x1, y1 = corner[0] * (image.width - w), corner[1] * (image.height - h)
    box = Box(x1, y1, x1 + w, y1 + h)
    fast, ref = render_view_opencv(image, box, view), render_view(image, box, view)
    assert fast.shape == ref.shape and fast.dtype == np.uint8 and fast.flags["C_CONTIGUOUS"]
    assert psnr(fast, ref) >= MIN_PSNR_OPENCV[content]


def test_opencv_view_of_a_flat_region_is_exact_and_scales_reduced_copies():
    pytest.importorskip("cv2")
    flat = Image.new("RGB", (300, 200), (12, 200, 77))
    view = render_view_opencv(flat, Box(10.3, 5.7, 290.1, 190.9), (150, 100))
    assert (view == (12, 200, 77)).all()  # the prefilter sums to 1 (and is symmetric)
    for scale in (0.5, 1.0, 1.37, 1.99):
        kernel = linear_prefilter(scale)
        assert kernel.size % 2 == 1 and kernel.sum() == pytest.approx(1, abs=1e-6)
        np.testing.assert_allclose(kernel, kernel[::-1], atol=1e-6)
    handle = ImageHandle(scene((1001, 750)))
    box, size = Box(100.5, 50.25, 900.75, 700.0), (400, 336)
    from_level = render_view_opencv(handle.reduced(2), box, size, original_size=(1001, 750))
    assert psnr(from_level, render_view(handle.image(), box, size)) >= MIN_PSNR_FAST_RESIZE


@pytest.mark.slow
@pytest.mark.parametrize("size", [(4000, 3000), (3000, 4000), (1600, 1200)])
def test_reduced_decode_first_view_within_psnr(size):
    """The fast first view (JPEG DCT-scaled decode) stays within the documented PSNR."""
    data = encode(scene(size, seed=1), quality=92)
    samples = [Sample(id="s", image=data, question="q", answer="a")]
    fast, _ = GroundedVQAEnv(samples, reduced_decode=True, max_pixels=512 * 28 * 28).reset(seed=0)
    ref, _ = GroundedVQAEnv(samples, reduced_decode=False, max_pixels=512 * 28 * 28).reset(seed=0)
    assert fast["image"].shape == ref["image"].shape
    assert psnr(fast["image"], ref["image"]) >= MIN_PSNR_REDUCED_DECODE


@pytest.mark.slow
def test_reduced_decode_defers_full_decoding_and_is_reproducible(tmp_path):
    path = tmp_path / "photo.jpg"
    scene((4000, 3000)).save(path, quality=90)
    samples = [Sample(id="p", image=str(path), question="q", answer="a")]
    env = GroundedVQAEnv(samples)
    obs1, _ = env.reset(seed=0)
    assert not env._handle.is_decoded  # the first view came from a reduced decode
    env.step("<crop>[10, 10, 300, 300]</crop>")
    assert env._handle.is_decoded
    obs2, _ = env.reset(seed=0)  # full image now cached: the first view must not change
    np.testing.assert_array_equal(obs1["image"], obs2["image"])


def png_samples(size: tuple[int, int], seed: int = 1) -> list[Sample]:
    """One sample on PNG bytes (no DCT-scaled decoding: every view comes from the full decode)."""
    return [Sample(id="s", image=encode(scene(size, seed=seed), "PNG"), question="q", answer="a")]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("size", "crop", "factor"),
    [
        ((4000, 3000), "<crop>[500, 400, 3300, 2600]</crop>", 2),  # 2.4x shrink
        ((3000, 4000), "<crop>[0, 0, 3000, 4000]</crop>", 4),  # 5x shrink
        ((1700, 1300), "<crop>[100, 100, 1650, 1250]</crop>", 2),  # 2.1x shrink
    ],
)
def test_fast_resize_crops_within_psnr(size, crop, factor):
    """Crops shrunk 2x or more come from the pyramid, within the documented PSNR of the exact view;
    first views are exact either way."""
    samples = png_samples(size)
    kwargs = {"coord_frame": "original", "max_pixels": 512 * 28 * 28}
    fast_env = GroundedVQAEnv(samples, fast_resize=True, **kwargs)
    exact_env = GroundedVQAEnv(samples, fast_resize=False, **kwargs)
    fast, _ = fast_env.reset(seed=0)
    exact, _ = exact_env.reset(seed=0)
    np.testing.assert_array_equal(fast["image"], exact["image"])
    exact, *_ = exact_env.step(crop)
    assert not exact_env._handle.levels  # the envs share one store: no pyramid yet
    fast, *_ = fast_env.step(crop)
    assert max(fast_env._handle.levels) == factor  # fast path taken
    assert fast["image"].shape == exact["image"].shape
    assert psnr(fast["image"], exact["image"]) >= MIN_PSNR_FAST_RESIZE


def test_fast_resize_keeps_small_shrinks_and_upscales_exact():
    """Views shrunk less than 2x per side, or upscaled, are PIL's exact resize of the original
    (with the reference backend)."""
    samples = png_samples((1600, 1200))
    env = GroundedVQAEnv(
        samples,
        coord_frame="original",
        max_pixels=512 * 28 * 28,
        fast_resize=True,
        resize_backend="pil",
    )
    original = Image.open(io.BytesIO(samples[0].image)).convert("RGB")
    for action in (
        "<crop>[100, 100, 1150, 900]</crop>",  # 1.4x shrink
        "<crop>[200, 300, 1600, 1200]</crop>",  # 1.9x on one side, 1.7x on the other
        "<crop>[10, 20, 210, 170]</crop>",
    ):  # upscaled
        env.reset(seed=0)
        obs, *_, info = env.step(action)
        assert not info["crop_adjusted"]
        expected = original.resize(
            info["view_size"], Image.Resampling.BICUBIC, box=info["crop_box"]
        )
        np.testing.assert_array_equal(obs["image"], np.asarray(expected))


def test_fast_resize_off_is_pil_resize_of_the_original():
    samples = png_samples((4000, 3000))
    env = GroundedVQAEnv(
        samples,
        coord_frame="original",
        max_pixels=512 * 28 * 28,
        fast_resize=False,
        resize_backend="pil",
    )
    env.reset(seed=0)
    original = Image.open(io.BytesIO(samples[0].image)).convert("RGB")
    obs, *_, info = env.step("<crop>[0, 0, 3000, 2000]</crop>")  # 3.9x shrink
    expected = original.resize(info["view_size"], Image.Resampling.BICUBIC, box=info["crop_box"])
    np.testing.assert_array_equal(obs["image"], np.asarray(expected))
    assert not env._handle.levels


def test_reduced_levels_are_box_filtered_cached_and_freed_with_the_handle():
    import gc
    import weakref

    handle = ImageHandle(scene((1001, 750)))
    assert handle.reduced(1) is handle.image()
    level2, level4 = handle.reduced(2), handle.reduced(4)
    assert level2.size == (501, 375) and level4.size == (251, 188)  # ceil(size / factor)
    assert handle.reduced(2) is level2 and handle.reduced(4) is level4  # built once
    np.testing.assert_array_equal(np.asarray(level4), np.asarray(level2.reduce(2)))
    for bad in (0, 3, 6):
        with pytest.raises(ValueError, match="power of two"):
            handle.reduced(bad)
    assert source_scale(level2.size, (1001, 750)) == (0.5, 0.5)  # pixel i covers [2i, 2i + 2)
    assert source_scale((500, 400), (1000, 750)) == (0.5, 400 / 750)  # not an integer reduction
    cache = ImageCache(1)
    cached = cache.get("a", lambda: ImageHandle(scene((800, 600))))
    level = weakref.ref(cached.reduced(2))
    del cached
    cache.get("b", lambda: ImageHandle(scene((8, 8))))  # evicts "a" with its pyramid
    gc.collect()
    assert level() is None


def test_resize_backend_choices(monkeypatch):
    """ "pil" is the reference byte for byte, "opencv" is within its PSNR, "auto" picks OpenCV when
    it imports; bad names and a missing OpenCV fail clearly."""
    samples = png_samples((1600, 1200))
    kwargs = {"coord_frame": "original", "max_pixels": 512 * 28 * 28}
    crop = "<crop>[100.5, 100.25, 1150, 900]</crop>"  # 1.4x shrink: resampled from the original
    ref_env = GroundedVQAEnv(samples, resize_backend="pil", **kwargs)
    ref_first, _ = ref_env.reset(seed=0)
    ref, *_, info = ref_env.step(crop)
    original = Image.open(io.BytesIO(samples[0].image)).convert("RGB")
    np.testing.assert_array_equal(
        ref["image"], render_view(original, Box(*info["crop_box"]), info["view_size"])
    )
    with pytest.raises(ValueError, match="resize_backend"):
        GroundedVQAEnv(samples, resize_backend="cv2")
    if importlib.util.find_spec("cv2") is not None:
        env = GroundedVQAEnv(samples, resize_backend="opencv", **kwargs)
        assert (
            env.resize_backend == "opencv"
            and GroundedVQAEnv(samples, **kwargs).resize_backend == "opencv"
        )
        first, _ = env.reset(seed=0)  # 1600x1200 PNG into 728x532: 2.2x, stays with PIL
        np.testing.assert_array_equal(first["image"], ref_first["image"])
        fast, *_, fast_info = env.step(crop)
        assert psnr(fast["image"], ref["image"]) >= MIN_PSNR_OPENCV["scene"]
        shown = fast_info["messages"][-1]["content"][0]["image"]
        np.testing.assert_array_equal(np.asarray(shown), fast["image"])
    monkeypatch.setitem(sys.modules, "cv2", None)  # OpenCV missing
    assert GroundedVQAEnv(samples).resize_backend == "pil"
    with pytest.raises(ImportError, match=r"grounding-gym\[fast\]"):
        GroundedVQAEnv(samples, resize_backend="opencv")


def test_reduction_factor():
    assert reduction_factor(Box(0, 0, 1000, 1000), (1000, 1000)) == 1
    assert reduction_factor(Box(0, 0, 1999, 4000), (1000, 1000)) == 1  # < 2x on one side
    assert reduction_factor(Box(0, 0, 2000, 2000), (1000, 1000)) == 2
    assert reduction_factor(Box(0, 0, 7999, 8000), (1000, 1000)) == 4
    assert reduction_factor(Box(0, 0, 100, 100), (1000, 1000)) == 1  # upscaled


@pytest.mark.parametrize("size", [(1400, 1050), (1000, 750), (1050, 1400)])
def test_upsample_first_view_within_psnr(size):
    """Opt-in: a JPEG 1.25-2x the view decodes at 1/2 scale; its first view stays within the
    PSNR."""
    data = encode(scene(size, seed=1), quality=92)
    samples = [Sample(id="s", image=data, question="q", answer="a")]
    budget = {"max_pixels": 512 * 28 * 28}
    env = GroundedVQAEnv(samples, upsample_first_view=True, **budget)
    fast, _ = env.reset(seed=0)
    assert not env._handle.is_decoded  # from the 1/2-scale decode
    ref, _ = GroundedVQAEnv(samples, reduced_decode=False, **budget).reset(seed=0)
    default_env = GroundedVQAEnv(samples, **budget)
    default, _ = default_env.reset(seed=0)
    assert default_env._handle.is_decoded  # off by default: less than 2x the view decodes fully
    np.testing.assert_array_equal(default["image"], ref["image"])
    assert fast["image"].shape == ref["image"].shape
    assert psnr(fast["image"], ref["image"]) >= MIN_PSNR_FAST_RESIZE


def test_upsample_first_view_needs_a_quarter_more_than_the_view():
    data = encode(scene((800, 600)), quality=92)
    handle = ImageHandle(data)
    assert handle.preview((700, 525), upsample=True).size == (800, 600)  # 1.14x: full decode
    assert ImageHandle(data).preview((600, 450), upsample=True).size == (
        400,
        300,
    )  # 1.33x: 1/2 scale


def test_exif_rotation_is_honoured_and_boxes_stay_right(tmp_path):
    upright = Image.new("RGB", (600, 400), (255, 255, 255))
    ImageDraw.Draw(upright).rectangle([400, 50, 499, 149], fill=(255, 0, 0))  # box (400,50,500,150)
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # what a camera held sideways writes
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 270 CW... i.e. viewers rotate the stored image 90 degrees clockwise
    path = tmp_path / "rotated.jpg"
    stored.save(path, exif=exif.tobytes(), quality=95)
    handle = ImageHandle(str(path))
    assert handle.size == (600, 400)
    pixels = np.asarray(handle.image())
    assert pixels.shape == (400, 600, 3)
    assert tuple(pixels[100, 450]) == pytest.approx((255, 0, 0), abs=40)
    assert tuple(pixels[300, 100]) == pytest.approx((255, 255, 255), abs=40)
    env = GroundedVQAEnv(
        [
            Sample(
                id="r",
                image=str(path),
                question="q",
                answer="a",
                gt_boxes=(Box(400, 50, 500, 150),),
            )
        ],
        coord_frame="original",
    )
    env.reset(seed=0)
    obs, *_ = env.step("<crop>[400, 50, 500, 150]</crop>")
    assert obs["image"][..., 0].mean() > 200 and obs["image"][..., 1].mean() < 80


def _expected_rgb(image: Image.Image, rgb: Image.Image) -> np.ndarray:
    """What `to_rgb(image)` must give, worked out from the raw bands (not through PIL's convert)."""
    raw = np.asarray(image)
    if image.mode in ("RGBA", "LA"):  # fully opaque here: alpha changes nothing
        assert (raw[..., -1] == 255).all()
    if image.mode == "RGBA":
        return np.asarray(rgb)
    if image.mode in ("L", "LA", "I"):
        grey = raw[..., 0] if image.mode == "LA" else raw
        return np.repeat(grey.astype(np.uint8)[..., None], 3, axis=-1)
    if image.mode == "1":  # bool pixels: black or white
        return np.repeat(np.where(raw, 255, 0).astype(np.uint8)[..., None], 3, axis=-1)
    if image.mode == "P":  # each index looked up in the image's own palette
        palette = np.asarray(image.getpalette(), dtype=np.uint8).reshape(-1, 3)
        return palette[raw]
    if image.mode == "CMYK":  # subtractive: R = (255 - C)(255 - K) / 255
        c, m, y, k = (raw[..., i].astype(np.float64) for i in range(4))
        return np.stack([(255 - v) * (255 - k) / 255 for v in (c, m, y)], axis=-1)
    if image.mode == "I;16":  # 16-bit grey is rescaled, not clipped to white
        return np.repeat(np.asarray(rgb.convert("L"))[..., None], 3, axis=-1)
    raise AssertionError(image.mode)


@pytest.mark.parametrize("mode", ["RGBA", "LA", "L", "P", "CMYK", "I;16", "I", "1"])
def test_any_mode_converts_to_rgb(mode):
    rgb = scene((64, 48))
    if mode == "I;16":
        image = Image.fromarray(np.asarray(rgb.convert("L"), dtype=np.uint16) * 257)
    elif mode == "I":
        image = rgb.convert("L").convert("I")
    else:
        image = rgb.convert(mode)
    out = to_rgb(image)
    assert out.mode == "RGB" and out.size == (64, 48)
    np.testing.assert_allclose(np.asarray(out, dtype=np.float64), _expected_rgb(image, rgb), atol=1)


def test_cmyk_with_black_ink_and_a_custom_palette_keep_their_colours():
    """The band meanings matter: CMYK is not RGB plus one band, a palette index is not a grey."""
    rng = np.random.default_rng(0)
    cmyk = Image.fromarray(rng.integers(0, 256, (24, 32, 4), dtype=np.uint8), "CMYK")
    np.testing.assert_allclose(
        np.asarray(to_rgb(cmyk), dtype=np.float64), _expected_rgb(cmyk, cmyk), atol=1
    )
    assert tuple(np.asarray(to_rgb(Image.new("CMYK", (2, 2), (0, 255, 255, 0))))[0, 0]) == (
        255,
        0,
        0,
    )
    assert tuple(np.asarray(to_rgb(Image.new("CMYK", (2, 2), (0, 0, 0, 255))))[0, 0]) == (0, 0, 0)
    indices = Image.fromarray(np.arange(12, dtype=np.uint8).reshape(3, 4), "P")
    colours = [(10 * i, 255 - 20 * i, (97 * i) % 256) for i in range(12)]
    indices.putpalette([c for colour in colours for c in colour])
    np.testing.assert_array_equal(
        np.asarray(to_rgb(indices)), np.array(colours, dtype=np.uint8).reshape(3, 4, 3)
    )


def test_half_transparent_pixels_are_blended_onto_white():
    rgba = Image.new("RGBA", (4, 4), (200, 40, 0, 128))  # alpha 128/255
    blended = [round(c * 128 / 255 + 255 * (1 - 128 / 255)) for c in (200, 40, 0)]
    assert tuple(np.asarray(to_rgb(rgba))[0, 0]) == pytest.approx(blended, abs=1)
    la = Image.new("LA", (4, 4), (0, 64))
    assert tuple(np.asarray(to_rgb(la))[0, 0]) == pytest.approx(
        [round(255 * (1 - 64 / 255))] * 3, abs=1
    )


def test_transparent_pixels_become_white():
    rgba = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    assert tuple(np.asarray(to_rgb(rgba))[0, 0]) == (255, 255, 255)


@pytest.mark.parametrize(
    ("payload", "message"),
    [(b"", "Cannot read"), (b"not an image at all", "Cannot read"), ("missing", "not found")],
)
def test_unreadable_sources_raise_clear_errors(tmp_path, payload, message):
    if isinstance(payload, bytes):
        path = tmp_path / "bad.jpg"
        path.write_bytes(payload)
    else:
        path = tmp_path / "missing.jpg"
    with pytest.raises(ImageLoadError, match=message) as err:
        ImageHandle(str(path)).image()
    assert str(path) in str(err.value)


def test_truncated_jpeg_raises_clear_error(tmp_path):
    data = encode(scene((800, 600)), quality=90)
    path = tmp_path / "truncated.jpg"
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(ImageLoadError, match="truncated.jpg"):
        ImageHandle(str(path)).image()


def test_decompression_bomb_refused_before_decoding(tmp_path, monkeypatch):
    path = tmp_path / "bomb.png"
    Image.new("L", (6000, 5000)).save(path)  # compresses to a few KB
    forbid_decoding(monkeypatch, "decoded a bomb")
    with pytest.raises(ImageTooLargeError, match="max_image_pixels"):
        _ = ImageHandle(str(path), max_image_pixels=10_000_000).size


def test_image_cache_is_bounded_lru():
    cache = ImageCache(max_items=2)
    made = []

    def make(key):
        made.append(key)
        return ImageHandle(Image.new("RGB", (4, 4)))

    for key in ["a", "b", "a", "c", "a", "b"]:
        cache.get(key, lambda key=key: make(key))
    assert made == ["a", "b", "c", "b"] and len(cache) == 2
    with pytest.raises(ValueError, match="image_cache_size"):
        ImageCache(-1)


class _LazyBytes:
    """A lazy encoded-image reference like the TSV loaders' (`read_bytes()`)."""

    def __init__(self, data: bytes):
        self.data, self.reads, self.where = data, 0, "rows.tsv row 7"

    def read_bytes(self) -> bytes:
        self.reads += 1
        return self.data

    def __call__(self) -> Image.Image:
        raise AssertionError("ImageHandle must read the bytes, not call the reference")


def test_lazy_byte_references_read_header_and_decode_reduced():
    ref = _LazyBytes(encode(scene((4000, 3000)), quality=90))
    handle = ImageHandle(ref)
    assert handle.size == (4000, 3000) and not handle.is_decoded
    assert handle.preview((500, 375)).size == (500, 375)  # 1/8-scale DCT decode
    assert handle.image().size == (4000, 3000) and ref.reads >= 1
    broken = _LazyBytes(b"garbage")
    with pytest.raises(ImageLoadError, match="rows.tsv row 7"):
        _ = ImageHandle(broken).size


def test_png_size_does_not_decode(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    scene((1200, 900)).save(path)
    forbid_decoding(monkeypatch, "decoded a PNG for its size")
    assert ImageHandle(str(path)).size == (1200, 900)
