"""vcfnet.cpu: the CPU's model name and flags."""

from vcfnet.cpu import CPU_FLAGS, cpu_model_and_flags, int8_kernels_saturate


def test_model_and_flags_of_this_cpu():
    model, flags = cpu_model_and_flags()
    assert model and isinstance(flags, frozenset)
    assert isinstance(int8_kernels_saturate(), bool)
    assert set(CPU_FLAGS) >= {"avx2", "avx512_vnni"}


def test_int8_saturates_only_on_x86_without_vnni_or_amx():
    assert int8_kernels_saturate(frozenset({"avx2", "fma"}))
    assert int8_kernels_saturate(frozenset({"avx2", "avx512f", "avx512bw"}))
    assert not int8_kernels_saturate(frozenset({"avx2", "avx512f", "avx512_vnni"}))
    assert not int8_kernels_saturate(frozenset({"avx2", "avx_vnni"}))
    assert not int8_kernels_saturate(frozenset({"avx2", "amx_int8"}))
    assert not int8_kernels_saturate(frozenset({"asimd", "asimddp"}))  # ARM: not this kernel
    assert not int8_kernels_saturate(frozenset())  # unknown (not Linux): no claim
