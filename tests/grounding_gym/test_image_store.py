"""The process-wide store of decoded images (`grounding_gym.image_store`): bounded in bytes,
shared by every env of a process, made once under concurrency, same pixels as unshared envs."""

from __future__ import annotations

import gc
import io
import platform
import sys
import threading
import time
import weakref

import numpy as np
import pytest
from PIL import Image

from grounding_gym import image_store
from grounding_gym.data import Sample, make_dataset
from grounding_gym.envs.grounded_vqa import GroundedVQAEnv
from grounding_gym.image_store import (
    DEFAULT_IMAGE_CACHE_BYTES,
    IMAGE_CACHE_BYTES_ENV,
    RELEASE_MIN_BYTES,
    ImageStore,
    nbytes,
    release_freed_memory,
    shared_store,
    source_key,
)
from grounding_gym.views import ImageHandle, ImageTooLargeError
from tests.conftest import make_scene, toy_samples
from tests.grounding_gym.test_views import scene


def rgb(side: int, value: int = 0) -> Image.Image:
    return Image.new("RGB", (side, side), (value, value, value))


def test_nbytes_counts_pillow_storage_and_arrays():
    assert nbytes(Image.new("RGB", (10, 5))) == 10 * 5 * 4  # Pillow pads RGB to 32 bits
    assert nbytes(Image.new("L", (10, 5))) == 50
    assert nbytes(np.zeros((3, 4, 3), np.uint8)) == 36
    assert nbytes(None) == 0


def test_store_evicts_least_recently_used_by_bytes():
    one = nbytes(rgb(10))  # 400 bytes
    store = ImageStore(max_bytes=3 * one)
    made = []

    def make(key):
        made.append(key)
        return rgb(10, key)

    for key in [1, 2, 3, 1, 4, 2]:  # 4 evicts 2 (1 was used after it), then 2 evicts 3
        store.get(key, lambda key=key: make(key))
        assert store.nbytes <= store.max_bytes
    assert made == [1, 2, 3, 4, 2]
    assert 3 not in store and {1, 2, 4} == {k for k in (1, 2, 3, 4) if k in store}
    assert store.nbytes == 3 * one and len(store) == 3
    stats = store.stats()
    assert (stats.hits, stats.misses, stats.evictions) == (1, 5, 2)

    big = rgb(40)  # 6,400 bytes > budget: returned, not kept, nothing evicted
    assert store.get("big", lambda: big) is big
    assert "big" not in store and len(store) == 3 and store.stats().too_large == 1

    nothing = ImageStore(0)
    calls = []
    for _ in range(2):
        nothing.get("k", lambda: calls.append(1) or rgb(2))
    assert len(calls) == 2 and len(nothing) == 0


@pytest.mark.parametrize("bad", [-1, 1.5, "1GB", True])
def test_bad_budgets_fail_clearly(bad):
    with pytest.raises(ValueError, match="image_cache_bytes must be an int >= 0"):
        ImageStore(bad)
    with pytest.raises(ValueError, match="image_cache_bytes"):
        GroundedVQAEnv(toy_samples(1), image_cache_bytes=bad)


def test_budget_from_environment_variable(monkeypatch):
    monkeypatch.delenv(IMAGE_CACHE_BYTES_ENV, raising=False)
    assert shared_store().max_bytes == DEFAULT_IMAGE_CACHE_BYTES
    monkeypatch.setenv(IMAGE_CACHE_BYTES_ENV, "1_000_000")
    assert shared_store().max_bytes == 1_000_000
    assert GroundedVQAEnv(toy_samples(1)).image_store is shared_store(1_000_000)
    monkeypatch.setenv(IMAGE_CACHE_BYTES_ENV, "1GB")
    with pytest.raises(ValueError, match=f"{IMAGE_CACHE_BYTES_ENV}='1GB' is not a byte count"):
        shared_store()


def test_concurrent_requests_make_a_value_once_and_share_errors():
    store = ImageStore(2**20)
    started, release = threading.Event(), threading.Event()
    calls = []

    def slow_make():
        calls.append(1)
        started.set()
        release.wait(5)
        return rgb(8)

    results = []
    threads = [threading.Thread(target=lambda: results.append(store.get("k", slow_make)))]
    threads[0].start()
    started.wait(5)
    threads += [
        threading.Thread(target=lambda: results.append(store.get("k", slow_make))) for _ in range(3)
    ]
    for t in threads[1:]:
        t.start()
    while store.stats().waits < 3:  # the three latecomers wait for the first making
        time.sleep(0.001)
    release.set()
    for t in threads:
        t.join(5)
    assert len(calls) == 1 and len(results) == 4 and all(r is results[0] for r in results)

    def failing():
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        store.get("bad", failing)
    assert store.get("bad", lambda: rgb(1)).size == (1, 1)  # a failure is not kept


def test_evictions_hand_freed_memory_back_once_enough_is_freed(monkeypatch):
    calls = []
    monkeypatch.setattr(image_store, "release_freed_memory", lambda: calls.append(1) or True)
    quarter = RELEASE_MIN_BYTES // 4
    store = ImageStore(max_bytes=2 * quarter)
    for key in range(10):  # 10 values, 2 kept: 8 evictions of a quarter each = 2 releases
        store.get(key, lambda: np.zeros(quarter, np.uint8))
    stats = store.stats()
    assert stats.evictions == 8 and len(calls) == 2 == stats.releases
    assert stats.release_seconds >= 0.0
    big = np.zeros(3 * quarter, np.uint8)  # not kept: its bytes count once the caller drops it
    store.get("big", lambda: big)
    store.get("one more", lambda: np.zeros(quarter, np.uint8))  # 3/4 + 1/4 freed: a release
    assert len(calls) == 3


def test_release_freed_memory_uses_glibc_malloc_trim_or_does_nothing(monkeypatch):
    glibc = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert release_freed_memory() is glibc
    monkeypatch.setattr(image_store, "_malloc_trim", lambda: None)  # another C library
    assert release_freed_memory() is False


@pytest.mark.parametrize("max_decodes", [1, 2])
def test_full_decodes_in_flight_are_bounded_per_store(max_decodes):
    store = ImageStore(2**24, max_decodes=max_decodes)
    entered = {name: threading.Event() for name in "ab"}
    go = threading.Event()

    def draw(name):
        entered[name].set()
        go.wait(5)
        return rgb(8, ord(name))

    handles = {name: ImageHandle(lambda name=name: draw(name), store=store) for name in "ab"}
    images = {}
    threads = [
        threading.Thread(target=lambda n=n: images.update({n: handles[n].image()})) for n in "ab"
    ]
    threads[0].start()
    assert entered["a"].wait(5)
    threads[1].start()
    # "b" may start drawing only if a second decode slot exists ("a" is still drawing)
    assert entered["b"].wait(0.3 if max_decodes == 1 else 5) is (max_decodes == 2)
    go.set()
    for t in threads:
        t.join(5)
    assert [images[n].getpixel((0, 0)) for n in "ab"] == [(97,) * 3, (98,) * 3]
    with pytest.raises(ValueError, match="max_decodes must be an int >= 1"):
        ImageStore(max_decodes=0)


def test_source_keys(tmp_path):
    path = tmp_path / "a.png"
    rgb(8).save(path)
    key = source_key(str(path))
    assert source_key(path) == key  # str and Path name the same file
    time.sleep(0.01)
    rgb(9).save(path)
    assert source_key(str(path)) != key  # an edited file is another image
    data = path.read_bytes()
    assert source_key(data) == source_key(bytes(data)) != source_key(data + b"x")
    synthetic = make_dataset("synthetic-hr", num_samples=2, image_size=512)
    again = make_dataset("synthetic-hr", num_samples=2, image_size=512)
    assert source_key(synthetic[1].image) == source_key(again[1].image)  # by value
    assert source_key(synthetic[1].image) != source_key(synthetic[0].image)
    image = rgb(4)
    assert source_key(image) == source_key(image) != source_key(rgb(4))  # by identity


def envs_for(samples, n: int, **kwargs) -> list[GroundedVQAEnv]:
    kwargs = {"coord_frame": "original", "max_pixels": 256 * 28 * 28, **kwargs}
    return [GroundedVQAEnv(samples, **kwargs) for _ in range(n)]


def mixed_samples(tmp_path) -> list[Sample]:
    """One sample per source kind: JPEG file, PNG bytes, in-memory image, synthetic callable."""
    jpeg = tmp_path / "photo.jpg"
    scene((2400, 1800), seed=3).save(jpeg, quality=90)
    png = io.BytesIO()
    scene((1500, 1100), seed=4).save(png, format="PNG")
    synthetic = make_dataset("synthetic-hr", num_samples=1, image_size=1024)[0]
    base = {"question": "q", "answer": "a"}
    return [
        Sample(id="jpeg", image=str(jpeg), **base),
        Sample(id="png", image=png.getvalue(), **base),
        Sample(id="pil", image=make_scene((1300, 900), toy_samples(1)[0].gt_boxes[0]), **base),
        Sample(id="synthetic", image=synthetic.image, **base),
    ]


CROPS = ("<crop>[0, 0, 1000, 800]</crop>", "<crop>[100, 50, 500, 350]</crop>")
"""A crop that shrinks 2x or more (pyramid level 2 or 4) and one that upsamples."""


def episode_views(env: GroundedVQAEnv, sample_id: str) -> list[np.ndarray]:
    obs, _ = env.reset(seed=0, options={"sample_id": sample_id})
    views = [obs["image"]]
    for action in CROPS:
        obs, *_ = env.step(action)
        views.append(obs["image"])
    return views


def test_views_are_byte_identical_with_and_without_sharing(tmp_path):
    samples = mixed_samples(tmp_path)
    shared = envs_for(samples, 3)  # one store for the pool: decodes and pyramids shared
    assert len({id(env.image_store) for env in shared}) == 1
    alone = envs_for(samples, 1, image_cache_bytes=0)[0]  # keeps nothing: decodes every view
    for sample in samples:
        expected = episode_views(alone, sample.id)
        private = ImageHandle(sample.image)  # no store: the handle keeps its own decode
        for env in shared:  # the second and third envs get every decode from the store
            got = episode_views(env, sample.id)
            assert len(got) == len(expected)
            for a, b in zip(got, expected, strict=True):
                assert a.dtype == b.dtype and a.shape == b.shape
                assert a.tobytes() == b.tobytes()
        assert shared[1]._handle.image() is shared[2]._handle.image()  # one decode
        assert (
            np.asarray(private.image()).tobytes() == np.asarray(shared[0]._handle.image()).tobytes()
        )
    store = shared[0].image_store
    assert store.stats().hits > 0 and store.nbytes <= store.max_bytes


def test_a_pool_stays_within_its_budget_and_handles_hold_no_pixels():
    samples = [  # rendered by a callable: each decode is a new image only the store keeps
        Sample(id=f"s{i}", image=lambda i=i: rgb(600, 10 * i), question="q", answer="a")
        for i in range(6)
    ]
    budget = 2 * nbytes(rgb(600)) + nbytes(rgb(300))  # two decodes and one pyramid level
    envs = envs_for(samples, 4, image_cache_bytes=budget, max_pixels=64 * 28 * 28)
    store = envs[0].image_store

    def visit(i: int) -> None:
        for env in envs:
            env.reset(options={"sample_id": i})
            env.step("<crop>[0, 0, 600, 600]</crop>")  # 2.7x shrink: a pyramid level
            assert store.nbytes <= budget

    visit(0)
    first = weakref.ref(envs[0]._handle.image())
    assert store.stats().misses == 2  # for all 4 envs: one decode, one pyramid level
    for i in range(1, len(samples)):
        visit(i)
    assert store.stats().evictions > 0
    gc.collect()
    assert first() is None  # nothing but the store held sample 0's decode


def test_a_store_hit_still_honours_each_envs_pixel_limit():
    samples = [Sample(id="big", image=rgb(800), question="q", answer="a")]
    trusting = envs_for(samples, 1)[0]
    trusting.reset(seed=0)
    trusting._handle.image()  # decoded into the shared store
    wary = envs_for(samples, 1, max_image_pixels=500 * 500)[0]
    assert wary.image_store is trusting.image_store
    with pytest.raises(ImageTooLargeError, match="max_image_pixels=250,000"):
        wary.reset(seed=0)


def test_a_copied_or_pickled_env_keeps_the_process_store():
    import copy
    import pickle

    env = GroundedVQAEnv(toy_samples(1), image_cache_bytes=10**8)
    env.reset(seed=0)
    assert copy.deepcopy(env).image_store is env.image_store
    assert pickle.loads(pickle.dumps(env.image_store)) is shared_store(10**8)
