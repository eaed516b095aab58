# Sourced by the launch scripts: the environment every causal-tune process wants.
# Open MPI refuses to run as root without these (containers and CI run as root).
export OMPI_ALLOW_RUN_AS_ROOT=1
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# Keep Open MPI from probing network interfaces that containers do not have.
export OMPI_MCA_btl_vader_single_copy_mechanism=${OMPI_MCA_btl_vader_single_copy_mechanism:-none}
# OpenBLAS picks its kernels from CPUID; in some VMs (this project's development and CI
# machines among them) the CPU model is masked and it falls back to generic SSE3 kernels
# ("Prescott") at a third of the speed. Unless set by the user, choose from the CPU's flags:
# the AVX-512 kernels where the CPU has them, else the AVX2 + FMA ones. (Results are
# bit-identical for any thread count and world size with any one kernel; another kernel
# gives other bits, as another CPU does.)
if [ -z "${OPENBLAS_CORETYPE:-}" ] && [ -r /proc/cpuinfo ]; then
    flags=$(grep -m1 '^flags' /proc/cpuinfo)
    if [[ $flags == *" avx512f "* && $flags == *" avx512bw "* && $flags == *" avx512vl "* && $flags == *" avx512dq "* ]]; then
        export OPENBLAS_CORETYPE=SkylakeX
    elif [[ $flags == *" avx2 "* && $flags == *" fma "* ]]; then
        export OPENBLAS_CORETYPE=Haswell
    fi
    unset flags
fi
