// Gives a plain `causal-tune …` the OpenBLAS kernels a launch script would choose.
//
// OpenBLAS (Debian's DYNAMIC_ARCH build) picks its kernel family once, in its library
// constructor, from CPUID; in VMs that mask the CPU model (this project's development and
// CI machines among them) it falls back to its generic SSE3 kernels ("Prescott"). Measured
// on such a VM (AVX-512): a ViT-L/16 512² training step took 110 s instead of 12 s. The
// override, OPENBLAS_CORETYPE, is read only in that constructor, before any of our code, and
// cannot be set earlier from inside the process: glibc sets `environ` after an executable's
// .preinit_array has run. So when OpenBLAS has chosen generic kernels and the variable is
// unset, this constructor sets it by launch/env.sh's rule — AVX-512 (F, BW, VL, DQ) →
// SkylakeX, else AVX2 + FMA → Haswell — and re-executes the program (same pid, arguments and
// environment plus the variable) before anything else has happened: no MPI, no file opened by
// us. A CPU that OpenBLAS recognises, or an OPENBLAS_CORETYPE the user set, is left alone.
// The bits of a run are those of its kernels, so a run started with launch/env.sh and one
// started without it now compute the same bits.
#define _GNU_SOURCE
#include "BLASKernelChoice.h"
#include "shim.h"   // CBLAS: openblas_get_corename, ct_blas_core_is_generic

#include <stddef.h>
#include <stdlib.h>
#include <strings.h>
#include <unistd.h>

// Marks the re-executed process, so that it can report the choice (and never loops).
#define CHOSE_MARKER "CAUSAL_TUNE_CHOSE_OPENBLAS_CORETYPE"

static const char *chosen = NULL;

const char *ct_blas_kernel_chosen_at_start(void) { return chosen; }

#if defined(__x86_64__) && defined(__linux__)
__attribute__((constructor))
static void choose_blas_kernel(int argc, char **argv, char **envp) {
    (void)argc; (void)envp;
    const char *marker = getenv(CHOSE_MARKER);
    if (marker != NULL) {
        const char *set = getenv("OPENBLAS_CORETYPE");
        if (set != NULL && strcasecmp(set, "SkylakeX") == 0) chosen = "SkylakeX";
        if (set != NULL && strcasecmp(set, "Haswell") == 0) chosen = "Haswell";
        unsetenv(CHOSE_MARKER);   // children see only OPENBLAS_CORETYPE, as if the user set it
        return;
    }
    const char *core = openblas_get_corename();
    if (getenv("OPENBLAS_CORETYPE") != NULL || core == NULL || !ct_blas_core_is_generic(core) || argv == NULL) return;
    __builtin_cpu_init();   // the feature table's own constructor may not have run yet
    const char *better = NULL;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")) {
        better = "SkylakeX";
    } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        better = "Haswell";
    }
    if (better == NULL) return;
    if (setenv("OPENBLAS_CORETYPE", better, 1) != 0 || setenv(CHOSE_MARKER, "1", 1) != 0) return;
    execv("/proc/self/exe", argv);
    // The re-execution failed (no /proc?): carry on with the generic kernels, as before.
    unsetenv("OPENBLAS_CORETYPE");
    unsetenv(CHOSE_MARKER);
}
#endif
