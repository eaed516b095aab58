#ifndef CAUSAL_TUNE_CBLAS_SHIM_H
#define CAUSAL_TUNE_CBLAS_SHIM_H
#include <cblas.h>

/// OpenBLAS's thread-count controls, declared here so Swift sees one stable name
/// whatever the header version.
static inline void ct_blas_set_threads(int n) { openblas_set_num_threads(n); }
static inline int ct_blas_get_threads(void) { return openblas_get_num_threads(); }
/// The kernel family OpenBLAS chose ("Haswell", "SkylakeX", "Prescott", …).
static inline const char *ct_blas_core_name(void) { return openblas_get_corename(); }
#endif
