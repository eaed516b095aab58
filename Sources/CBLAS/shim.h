#ifndef CAUSAL_TUNE_CBLAS_SHIM_H
#define CAUSAL_TUNE_CBLAS_SHIM_H
#include <cblas.h>
#include <strings.h>

/// OpenBLAS's thread-count controls, declared here so Swift sees one stable name
/// whatever the header version.
static inline void ct_blas_set_threads(int n) { openblas_set_num_threads(n); }
static inline int ct_blas_get_threads(void) { return openblas_get_num_threads(); }
/// The kernel family OpenBLAS chose ("Haswell", "SkylakeX", "Prescott", …).
static inline const char *ct_blas_core_name(void) { return openblas_get_corename(); }
/// Whether `core` is one of OpenBLAS's generic kernel families, which leave most of a modern
/// CPU's speed unused (what it falls back to when a VM masks the CPU model). Used by Swift
/// (`BLAS.runsGenericKernels`) and by the CLI's start-up kernel choice (BLASKernelChoice).
static inline int ct_blas_core_is_generic(const char *core) {
    static const char *const generic[] = {"prescott", "core2", "penryn", "dunnington", "nehalem", "atom",
                                          "katmai", "coppermine", "northwood", "banias"};
    for (unsigned long i = 0; i < sizeof generic / sizeof generic[0]; i++) {
        if (strcasecmp(core, generic[i]) == 0) return 1;
    }
    return 0;
}

/* LAPACK's symmetric eigensolver (dsyevr, relatively robust representations) inside the same
   libopenblas: Debian's libopenblas-dev ships no LAPACK header, so the Fortran prototype is
   declared here. The trailing size_t arguments are gfortran's hidden CHARACTER lengths. */
void dsyevr_(const char *jobz, const char *range, const char *uplo, const blasint *n, double *a,
             const blasint *lda, const double *vl, const double *vu, const blasint *il, const blasint *iu,
             const double *abstol, blasint *m, double *w, double *z, const blasint *ldz, blasint *isuppz,
             double *work, const blasint *lwork, blasint *iwork, const blasint *liwork, blasint *info,
             size_t jobz_len, size_t range_len, size_t uplo_len);
#endif
