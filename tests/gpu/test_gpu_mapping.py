"""Which GPU each ComfyUI instance runs on (comfyui_exporter.gpu.mapping)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from comfyui_exporter.gpu.mapping import (
    ComfyDevice,
    GpuMapping,
    Unmapped,
    argv_option,
    cuda_ordinal,
    map_device,
    map_devices,
    torch_gpu_name,
)
from comfyui_exporter.gpu.source.read import KnownGpu

GIB = 1024**3
H100 = "NVIDIA H100 80GB HBM3"
H100_TOTAL = 85520809984  # NVML total; cudaMemGetInfo reports ~0.993 of it
H100_CUDA = 84929593344


def h100s(n: int = 8) -> tuple[KnownGpu, ...]:
    return tuple(KnownGpu(i, f"GPU-h100-{i}", H100, H100_TOTAL) for i in range(n))


def dev(
    argv: tuple[str, ...] = (),
    name: str = f"cuda:0 {H100} : cudaMallocAsync",
    *,
    instance: str = "c",
    type_: str | None = "cuda",
    index: int | None = 0,
    vram: int | None = H100_CUDA,
    override: str | None = None,
) -> ComfyDevice:
    return ComfyDevice(instance, name, type_, index, vram, ("main.py", *argv), override)


# -- parsing ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("cuda:0 NVIDIA GeForce RTX 4090 : cudaMallocAsync", (0, "NVIDIA GeForce RTX 4090")),
        ("cuda:1 NVIDIA H100 80GB HBM3 : native", (1, "NVIDIA H100 80GB HBM3")),
        ("cuda:0 Tesla T4 : ", (0, "Tesla T4")),  # torch.cuda.get_allocator_backend() failed -> ""
        (
            "cuda:0 NVIDIA A100-SXM4-80GB MIG 3g.40gb : cudaMallocAsync",
            (0, "NVIDIA A100-SXM4-80GB MIG 3g.40gb"),
        ),
        ("CUDA 0: NVIDIA A10", (0, "NVIDIA A10")),  # ComfyUI's fallback format
        ("cpu", (None, None)),
        ("mps", (None, None)),
        ("xpu:0 Intel(R) Arc(TM) A770 Graphics : native", (None, None)),
        ("", (None, None)),
        (None, (None, None)),
    ],
)
def test_torch_gpu_name(name: str | None, expected: tuple[int | None, str | None]) -> None:
    assert torch_gpu_name(name) == expected


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["main.py", "--cuda-device", "3"], "3"),
        (["main.py", "--cuda-device=2"], "2"),
        (["main.py", "--cuda-dev", "5"], "5"),  # argparse abbreviation
        (["main.py", "--cuda-d=6"], "6"),
        (["main.py", "--cuda", "1"], None),  # ambiguous with --cuda-malloc in ComfyUI: argparse refuses it
        (["main.py", "--cuda-malloc"], None),
        (["main.py", "--cuda-device", "1", "--cuda-device", "4"], "4"),  # last wins
        (["main.py", "--", "--cuda-device", "1"], None),
        (["main.py", "--cuda-device"], None),
        (["main.py"], None),
    ],
)
def test_argv_option(argv: list[str], expected: str | None) -> None:
    assert argv_option(argv, "--cuda-device", len("--cuda-d")) == expected


@pytest.mark.parametrize(
    ("argv", "index", "expected"),
    [
        ((), 0, (0, False)),
        ((), 2, (2, False)),
        (("--cuda-device", "3"), 0, (3, True)),
        (("--cuda-device", "2,5"), 1, (5, True)),  # forks that accept a list: torch cuda:1 is the 2nd listed
        (("--cuda-device", "2,5"), 2, (None, True)),
        (("--cuda-device", "all"), 1, (1, False)),
        (("--cuda-device", "GPU-abc"), 0, (None, True)),
        (("--default-device", "2"), 0, (2, True)),  # CUDA_VISIBLE_DEVICES=2,0,1,3,...
        (("--default-device", "2"), 1, (0, True)),
        (("--default-device", "2"), 3, (3, True)),
        (("--default-device", "2", "--cuda-device", "6"), 0, (6, True)),  # ComfyUI applies --cuda-device last
    ],
)
def test_cuda_ordinal(argv: tuple[str, ...], index: int, expected: tuple[int | None, bool]) -> None:
    assert cuda_ordinal(dev(argv, f"cuda:{index} {H100} : native", index=index)) == expected


def test_cuda_ordinal_falls_back_to_the_name_when_index_is_missing() -> None:
    assert cuda_ordinal(dev((), f"cuda:1 {H100} : native", index=None)) == (1, False)


# -- rules -----------------------------------------------------------------------------------------
def test_override_wins_and_uses_nvmls_spelling() -> None:
    result = map_device(dev(("--cuda-device", "0"), override="gpu-H100-5"), h100s())
    assert result == GpuMapping("c", "5", "GPU-h100-5", "override")


def test_override_for_a_gpu_this_host_does_not_have_keeps_the_uuid_for_dcgm_joins() -> None:
    result = map_device(dev(override="GPU-elsewhere"), h100s())
    assert result == GpuMapping("c", "", "GPU-elsewhere", "override")
    assert map_device(dev(override="MIG-1234"), ()) == GpuMapping("c", "", "MIG-1234", "override")


@pytest.mark.parametrize(
    ("name", "type_"), [("cpu", "cpu"), ("mps", "mps"), ("xpu:0 Intel Arc : native", "xpu"), (None, None)]
)
def test_non_cuda_devices_are_not_mapped(name: str | None, type_: str | None) -> None:
    assert isinstance(map_device(dev(name=name, type_=type_, index=None), h100s()), Unmapped)  # type: ignore[arg-type]


def test_rocm_reports_type_cuda_but_matches_no_nvml_gpu() -> None:
    result = map_device(dev(name="cuda:0 AMD Radeon RX 7900 XTX : native", vram=25753026560), h100s())
    assert isinstance(result, Unmapped) and "no NVML GPU" in result.reason


def test_a_unique_model_maps_whatever_the_ordinal_says() -> None:
    gpus = (
        KnownGpu(0, "GPU-3090", "NVIDIA GeForce RTX 3090", 25769803776),
        KnownGpu(1, "GPU-4090", "NVIDIA GeForce RTX 4090", 25757220864),
    )
    # FASTEST_FIRST makes the 4090 CUDA device 0 although NVML (PCI order) calls it 1.
    four = dev(name="cuda:0 NVIDIA GeForce RTX 4090 : cudaMallocAsync", vram=25393692672)
    assert map_device(four, gpus) == GpuMapping("c", "1", "GPU-4090", "only_model")
    three = dev(("--cuda-device", "1"), "cuda:0 NVIDIA GeForce RTX 3090 : cudaMallocAsync", vram=25438126080)
    assert map_device(three, gpus) == GpuMapping("c", "0", "GPU-3090", "only_model")


def test_identical_gpus_use_the_cuda_ordinal() -> None:
    assert map_device(dev(("--cuda-device", "5")), h100s()) == GpuMapping(
        "c", "5", "GPU-h100-5", "cuda_ordinal"
    )
    assert map_device(dev(("--default-device", "3")), h100s()) == GpuMapping(
        "c", "3", "GPU-h100-3", "cuda_ordinal"
    )
    assert map_device(dev(), h100s()) == GpuMapping("c", "0", "GPU-h100-0", "assumed_ordinal")


def test_an_ordinal_beyond_the_gpus_is_not_mapped() -> None:
    assert isinstance(map_device(dev(("--cuda-device", "8")), h100s()), Unmapped)


def test_duplicates_in_a_mixed_host_are_ambiguous() -> None:
    """PCI order 3090, 4090, 4090: FASTEST_FIRST would call the 4090s 0 and 1, PCI_BUS_ID 1 and 2."""
    gpus = (
        KnownGpu(0, "GPU-3090", "NVIDIA GeForce RTX 3090", 25769803776),
        KnownGpu(1, "GPU-4090a", "NVIDIA GeForce RTX 4090", 25757220864),
        KnownGpu(2, "GPU-4090b", "NVIDIA GeForce RTX 4090", 25757220864),
    )
    result = map_device(
        dev(("--cuda-device", "1"), "cuda:0 NVIDIA GeForce RTX 4090 : native", vram=25393692672), gpus
    )
    assert isinstance(result, Unmapped) and "FASTEST_FIRST" in result.reason and "@GPU-uuid" in result.reason


def test_a_mig_slice_does_not_map_to_its_parent() -> None:
    gpus = (KnownGpu(0, "GPU-a100", "NVIDIA A100-SXM4-80GB", 85899345920),)
    assert isinstance(
        map_device(dev(name="cuda:0 NVIDIA A100-SXM4-80GB : native", vram=42278584320), gpus), Unmapped
    )
    assert isinstance(
        map_device(dev(name="cuda:0 NVIDIA A100-SXM4-80GB MIG 3g.40gb : native"), gpus), Unmapped
    )


@pytest.mark.parametrize(
    ("vram", "mapped"),
    [
        (None, True),
        (H100_TOTAL, True),
        (int(0.81 * H100_TOTAL), True),
        (int(0.79 * H100_TOTAL), False),
        (int(1.03 * H100_TOTAL), False),
    ],
)
def test_vram_total_must_fit_nvmls_total(vram: int | None, mapped: bool) -> None:
    assert isinstance(map_device(dev(vram=vram), h100s(1)), GpuMapping) is mapped


def test_names_compare_case_and_space_insensitively() -> None:
    assert isinstance(map_device(dev(name="cuda:0 nvidia  h100 80gb hbm3 : native"), h100s(1)), GpuMapping)


def test_instances_sharing_a_gpu_only_by_assumption_are_not_mapped() -> None:
    """Two ComfyUIs without --cuda-device on an 8-GPU host: probably CUDA_VISIBLE_DEVICES pins them."""
    results = map_devices(
        [dev(instance="a"), dev(instance="b"), dev(("--cuda-device", "0"), instance="c")], h100s()
    )
    assert [type(r) for r in results] == [Unmapped, Unmapped, GpuMapping]
    assert "CUDA_VISIBLE_DEVICES" in results[0].reason  # type: ignore[union-attr]
    # one instance alone keeps its assumed mapping; so do two that share a *unique* model
    assert isinstance(map_devices([dev(instance="a")], h100s())[0], GpuMapping)
    one = (KnownGpu(0, "GPU-only", H100, H100_TOTAL),)
    assert all(isinstance(r, GpuMapping) for r in map_devices([dev(instance="a"), dev(instance="b")], one))


# -- ComfyUI 0.38: /system_stats lists every torch device ------------------------------------------
def listed(n: int) -> tuple[str, ...]:
    return tuple(f"cuda:{i} {H100} : cudaMallocAsync" for i in range(n))


def test_a_full_device_list_makes_the_torch_index_the_cuda_ordinal() -> None:
    """0.38 on an 8-GPU host without CUDA_VISIBLE_DEVICES lists all 8: nothing is hidden."""
    second = dev(name=f"cuda:3 {H100} : cudaMallocAsync", index=3)
    assert map_device(replace(second, listed=listed(8)), h100s()) == GpuMapping(
        "c", "3", "GPU-h100-3", "device_list"
    )


def test_a_partial_device_list_means_an_invisible_cuda_visible_devices() -> None:
    """0.38 sees 2 of 8 identical GPUs: which two is not visible, so no guess."""
    result = map_device(replace(dev(), listed=listed(2)), h100s())
    assert isinstance(result, Unmapped)
    assert "2 of this host's 8" in result.reason
    # an explicit --cuda-device still decides, and a single listed device behaves as before 0.38
    pinned = replace(dev(("--cuda-device", "4")), listed=listed(1))
    assert map_device(pinned, h100s()) == GpuMapping("c", "4", "GPU-h100-4", "cuda_ordinal")
    assert map_device(replace(dev(), listed=listed(1)), h100s()).method == "assumed_ordinal"  # type: ignore[union-attr]


def test_instances_sharing_a_gpu_with_full_device_lists_stay_mapped() -> None:
    """Two 0.38 ComfyUIs that both list all GPUs and run on cuda:0 really share GPU 0."""
    results = map_devices(
        [replace(dev(instance="a"), listed=listed(8)), replace(dev(instance="b"), listed=listed(8))],
        h100s(),
    )
    assert results == [
        GpuMapping("a", "0", "GPU-h100-0", "device_list"),
        GpuMapping("b", "0", "GPU-h100-0", "device_list"),
    ]


# -- robustness ------------------------------------------------------------------------------------
names = st.one_of(
    st.none(),
    st.text(max_size=40),
    st.builds(lambda i, n: f"cuda:{i} {n} : native", st.integers(0, 40), st.sampled_from([H100, "x", ""])),
)
argvs = st.lists(
    st.one_of(
        st.text(max_size=12),
        st.sampled_from(
            ["--cuda-device", "--default-device", "--cuda-d", "1", "-1", "0,1", "all", "99", "="]
        ),
    ),
    max_size=6,
)
devices = st.builds(
    ComfyDevice,
    st.text(max_size=8),
    names,
    st.sampled_from(["cuda", "cpu", None, "CUDA"]),
    st.one_of(st.none(), st.integers(-3, 40)),
    st.one_of(st.none(), st.integers(-1, 2**40)),
    argvs.map(tuple),
    st.one_of(st.none(), st.text(max_size=20)),
    st.lists(names.map(str), max_size=4).map(tuple),
)
gpus = st.lists(
    st.builds(
        KnownGpu,
        st.integers(0, 9),
        st.text(min_size=1, max_size=10),
        st.one_of(st.none(), st.sampled_from([H100, "x"])),
        st.one_of(st.none(), st.integers(0, 2**40)),
    ),
    max_size=6,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(devices, max_size=5), gpus)
def test_mapping_never_raises_and_answers_every_instance(
    devs: list[ComfyDevice], known: list[KnownGpu]
) -> None:
    results = map_devices(devs, known)
    assert [r.instance for r in results] == [d.instance for d in devs]
    for device, result in zip(devs, results, strict=True):
        if isinstance(result, GpuMapping):
            assert result.uuid
            if result.method != "override":
                assert result.gpu in {str(g.index) for g in known}
        if device.override_uuid and device.override_uuid.strip():
            assert isinstance(result, GpuMapping) and result.method == "override"
