#ifndef CAUSAL_TUNE_BLAS_KERNEL_CHOICE_H
#define CAUSAL_TUNE_BLAS_KERNEL_CHOICE_H

/// The OpenBLAS kernel family this process chose for itself ("SkylakeX", "Haswell") because
/// OpenBLAS had fallen back to generic kernels, or NULL when it chose none (see
/// kernel_choice.c).
const char *ct_blas_kernel_chosen_at_start(void);

#endif
