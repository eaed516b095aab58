/* Our own single-precision matrix product (`CAUSAL_TUNE_PRODUCTS=panels`; CPanelProduct.h).

   Every element of C is one chain of fused multiply-adds over p = 0 … k − 1 from zero,
   then alpha·acc (+ beta·C): the same operations in the same order whatever the kernel
   (AVX-512, AVX2, portable), the block of C a call covers, or how many calls cover C. So a
   product cut into any tiles, on any number of threads, on any x86-64 CPU with FMA, gives
   the same bits — OpenBLAS does not (its kernels for edge blocks round differently, so its
   bits change with the split).

   The operands are packed once per product into panels (A: MR rows × k, p-major; B: k × NR,
   p-major; both zero-padded to whole panels) that every tile shares; a tile's kernel then
   reads only packed panels. Kernels: AVX-512 12 × 32 (24 accumulators), AVX2 6 × 16 (12);
   the portable one (fmaf) uses the AVX2 panels and is all other CPUs get. */
#include "CPanelProduct.h"
#include <math.h>
#include <string.h>
#if defined(__x86_64__)
#define CT_X86 1
#include <immintrin.h>
#else
#define CT_X86 0
#endif

enum { MR512 = 12, NR512 = 32, MR256 = 6, NR256 = 16 };

static int kind_cached = -1;
void ct_panel_force_kind(int kind) { kind_cached = kind; }
int ct_panel_kernel_kind(void) {
    if (kind_cached < 0) {
        kind_cached = 0;
#if CT_X86
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx512f")) kind_cached = 2;
        else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) kind_cached = 1;
#endif
    }
    return kind_cached;
}
int ct_panel_mr(void) { return ct_panel_kernel_kind() == 2 ? MR512 : MR256; }
int ct_panel_nr(void) { return ct_panel_kernel_kind() == 2 ? NR512 : NR256; }


#if CT_X86
/* Transposes 16 rows of 16 floats in registers: out[j] = column j. */
__attribute__((target("avx512f")))
static inline void transpose16(__m512 r[16]) {
    __m512 t[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    /* r[4i + j], 128-bit lane L: column 4L + j of rows 4i … 4i + 3. */
    for (int i = 0; i < 4; i++) {
        r[4 * i] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
        r[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
        r[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
        r[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
    }
    for (int j = 0; j < 4; j++) {
        t[j] = _mm512_shuffle_f32x4(r[j], r[4 + j], 0x88);
        t[4 + j] = _mm512_shuffle_f32x4(r[j], r[4 + j], 0xDD);
        t[8 + j] = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0x88);
        t[12 + j] = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0xDD);
    }
    for (int j = 0; j < 4; j++) {
        r[j] = _mm512_shuffle_f32x4(t[j], t[8 + j], 0x88);
        r[8 + j] = _mm512_shuffle_f32x4(t[j], t[8 + j], 0xDD);
        r[4 + j] = _mm512_shuffle_f32x4(t[4 + j], t[12 + j], 0x88);
        r[12 + j] = _mm512_shuffle_f32x4(t[4 + j], t[12 + j], 0xDD);
    }
}

/* 16 steps of p from `rows` (≤ 16) source rows `src[i] + p0` into dst[p * stride + i]
   (the first `rows` lanes stored). */
__attribute__((target("avx512f")))
static void gather16(const float *const *src, int rows, long p0, float *dst, long stride) {
    __m512 r[16];
    for (int i = 0; i < 16; i++) r[i] = i < rows ? _mm512_loadu_ps(src[i] + p0) : _mm512_setzero_ps();
    transpose16(r);
    __mmask16 lanes = (__mmask16)((1u << rows) - 1);
    for (int p = 0; p < 16; p++) _mm512_mask_storeu_ps(dst + p * stride, lanes, r[p]);
}
#endif

void ct_panel_pack_a(int transpose, const float *a, long lda, long row0, long rows, long k0, long k1, long k,
                     float *packed) {
    const long mr = ct_panel_mr();
    for (long i0 = 0; i0 < rows; i0 += mr) {
        long h = rows - i0 < mr ? rows - i0 : mr;
        float *dst = packed + i0 * k;
        if (!transpose) {
            long p0 = k0;
#if CT_X86
            if (mr == MR512 && h == MR512) {
                /* Whole panels: 16 steps of p at a time through a register transpose. */
                const float *rowsA[MR512];
                for (int ii = 0; ii < MR512; ii++) rowsA[ii] = a + (row0 + i0 + ii) * lda;
                for (; p0 + 16 <= k1; p0 += 16) gather16(rowsA, MR512, p0, dst + p0 * mr, mr);
            }
#endif
            /* Blocks of 16 steps of p: the block's mr × 16 destination stays in L1 while
               each source row is read contiguously. */
            for (; p0 < k1; p0 += 16) {
                long pe = k1 - p0 < 16 ? k1 - p0 : 16;
                for (long ii = 0; ii < h; ii++) {
                    const float *src = a + (row0 + i0 + ii) * lda + p0;
                    float *d = dst + p0 * mr + ii;
                    for (long p = 0; p < pe; p++) d[p * mr] = src[p];
                }
                for (long ii = h; ii < mr; ii++)
                    for (long p = 0; p < pe; p++) dst[(p0 + p) * mr + ii] = 0;
            }
        } else {
            for (long p = k0; p < k1; p++) {
                const float *src = a + p * lda + row0 + i0;
                float *d = dst + p * mr;
                for (long ii = 0; ii < h; ii++) d[ii] = src[ii];
                for (long ii = h; ii < mr; ii++) d[ii] = 0;
            }
        }
    }
}

void ct_panel_pack_b(int transpose, const float *b, long ldb, long column0, long columns, long k0, long k1, long k,
                     float *packed) {
    const long nr = ct_panel_nr();
    for (long j0 = 0; j0 < columns; j0 += nr) {
        long w = columns - j0 < nr ? columns - j0 : nr;
        float *dst = packed + j0 * k;
        if (!transpose) {
            for (long p = k0; p < k1; p++) {
                const float *src = b + p * ldb + column0 + j0;
                float *d = dst + p * nr;
                memcpy(d, src, (size_t)w * sizeof(float));
                for (long jj = w; jj < nr; jj++) d[jj] = 0;
            }
        } else {
            long p0 = k0;
#if CT_X86
            if (nr == NR512 && w == NR512) {
                const float *columnsB[NR512];
                for (int jj = 0; jj < NR512; jj++) columnsB[jj] = b + (column0 + j0 + jj) * ldb;
                for (; p0 + 16 <= k1; p0 += 16) {
                    gather16(columnsB, 16, p0, dst + p0 * nr, nr);
                    gather16(columnsB + 16, 16, p0, dst + p0 * nr + 16, nr);
                }
            }
#endif
            for (; p0 < k1; p0 += 16) {
                long pe = k1 - p0 < 16 ? k1 - p0 : 16;
                for (long jj = 0; jj < w; jj++) {
                    const float *src = b + (column0 + j0 + jj) * ldb + p0;
                    float *d = dst + p0 * nr + jj;
                    for (long p = 0; p < pe; p++) d[p * nr] = src[p];
                }
                for (long jj = w; jj < nr; jj++)
                    for (long p = 0; p < pe; p++) dst[(p0 + p) * nr + jj] = 0;
            }
        }
    }
}

/* Rows of A whose panels stay in L2 (≈ 1 MB) while every column panel of B passes them. */
static long row_block(long mr, long k) {
    long panels = (1L << 18) / (mr * (k > 0 ? k : 1));
    return (panels < 1 ? 1 : panels) * mr;
}

/* C block (h × w) = alpha·acc + beta·C, acc an MR × NR tile with row stride nr. Inlined into
   each micro-kernel, so that it is compiled for that kernel's instruction set: `fmaf` is
   then one vector instruction rather than a library call per element. */
static inline __attribute__((always_inline)) void store_tile(const float *acc, long nr, long h, long w, float alpha, float beta, float *c, long ldc) {
    for (long i = 0; i < h; i++) {
        float *row = c + i * ldc;
        const float *src = acc + i * nr;
        if (beta == 0) for (long j = 0; j < w; j++) row[j] = alpha * src[j];
        else for (long j = 0; j < w; j++) row[j] = fmaf(beta, row[j], alpha * src[j]);
    }
}

/* The micro-kernels: one MR × NR block of C over all of k, then its h × w part stored into C.
   Each is a function of its own so that nothing else is live in its loop: inlined into the
   blocking loop, the AVX2 kernel (16 ymm registers: 12 accumulators, B's two vectors and A's
   broadcast) spilled accumulators and ran at a quarter of its speed. */
typedef void (*micro_kernel)(long k, const float *ap, const float *bp, long h, long w,
                             float alpha, float beta, float *c, long ldc);

#if CT_X86
__attribute__((target("avx512f"), noinline))
static void micro512(long k, const float *ap, const float *bp, long h, long w,
                     float alpha, float beta, float *c, long ldc) {
    float tile[MR512 * NR512] __attribute__((aligned(64)));
    __m512 c00 = _mm512_setzero_ps(), c01 = _mm512_setzero_ps();
    __m512 c10 = _mm512_setzero_ps(), c11 = _mm512_setzero_ps();
    __m512 c20 = _mm512_setzero_ps(), c21 = _mm512_setzero_ps();
    __m512 c30 = _mm512_setzero_ps(), c31 = _mm512_setzero_ps();
    __m512 c40 = _mm512_setzero_ps(), c41 = _mm512_setzero_ps();
    __m512 c50 = _mm512_setzero_ps(), c51 = _mm512_setzero_ps();
    __m512 c60 = _mm512_setzero_ps(), c61 = _mm512_setzero_ps();
    __m512 c70 = _mm512_setzero_ps(), c71 = _mm512_setzero_ps();
    __m512 c80 = _mm512_setzero_ps(), c81 = _mm512_setzero_ps();
    __m512 c90 = _mm512_setzero_ps(), c91 = _mm512_setzero_ps();
    __m512 ca0 = _mm512_setzero_ps(), ca1 = _mm512_setzero_ps();
    __m512 cb0 = _mm512_setzero_ps(), cb1 = _mm512_setzero_ps();
    const float *a = ap, *b = bp;
    for (long p = 0; p < k; p++, a += MR512, b += NR512) {
        __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
        __m512 x;
        x = _mm512_set1_ps(a[0]);  c00 = _mm512_fmadd_ps(x, b0, c00); c01 = _mm512_fmadd_ps(x, b1, c01);
        x = _mm512_set1_ps(a[1]);  c10 = _mm512_fmadd_ps(x, b0, c10); c11 = _mm512_fmadd_ps(x, b1, c11);
        x = _mm512_set1_ps(a[2]);  c20 = _mm512_fmadd_ps(x, b0, c20); c21 = _mm512_fmadd_ps(x, b1, c21);
        x = _mm512_set1_ps(a[3]);  c30 = _mm512_fmadd_ps(x, b0, c30); c31 = _mm512_fmadd_ps(x, b1, c31);
        x = _mm512_set1_ps(a[4]);  c40 = _mm512_fmadd_ps(x, b0, c40); c41 = _mm512_fmadd_ps(x, b1, c41);
        x = _mm512_set1_ps(a[5]);  c50 = _mm512_fmadd_ps(x, b0, c50); c51 = _mm512_fmadd_ps(x, b1, c51);
        x = _mm512_set1_ps(a[6]);  c60 = _mm512_fmadd_ps(x, b0, c60); c61 = _mm512_fmadd_ps(x, b1, c61);
        x = _mm512_set1_ps(a[7]);  c70 = _mm512_fmadd_ps(x, b0, c70); c71 = _mm512_fmadd_ps(x, b1, c71);
        x = _mm512_set1_ps(a[8]);  c80 = _mm512_fmadd_ps(x, b0, c80); c81 = _mm512_fmadd_ps(x, b1, c81);
        x = _mm512_set1_ps(a[9]);  c90 = _mm512_fmadd_ps(x, b0, c90); c91 = _mm512_fmadd_ps(x, b1, c91);
        x = _mm512_set1_ps(a[10]); ca0 = _mm512_fmadd_ps(x, b0, ca0); ca1 = _mm512_fmadd_ps(x, b1, ca1);
        x = _mm512_set1_ps(a[11]); cb0 = _mm512_fmadd_ps(x, b0, cb0); cb1 = _mm512_fmadd_ps(x, b1, cb1);
    }
    __m512 acc[24] = {c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51,
                      c60, c61, c70, c71, c80, c81, c90, c91, ca0, ca1, cb0, cb1};
    if (h == MR512 && w == NR512) {
        /* A whole block straight from the registers (the same arithmetic as store_tile):
           with a short k (the DCT's 32) the round trip through `tile` cost ≈ 40 %. */
        __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
        for (int i = 0; i < MR512; i++) {
            float *row = c + i * ldc;
            __m512 r0 = _mm512_mul_ps(va, acc[2 * i]), r1 = _mm512_mul_ps(va, acc[2 * i + 1]);
            if (beta != 0) {
                r0 = _mm512_fmadd_ps(vb, _mm512_loadu_ps(row), r0);
                r1 = _mm512_fmadd_ps(vb, _mm512_loadu_ps(row + 16), r1);
            }
            _mm512_storeu_ps(row, r0);
            _mm512_storeu_ps(row + 16, r1);
        }
        return;
    }
    for (int i = 0; i < 2 * MR512; i++) _mm512_store_ps(tile + 16 * i, acc[i]);
    store_tile(tile, NR512, h, w, alpha, beta, c, ldc);
}

__attribute__((target("avx2,fma"), noinline))
static void micro256(long k, const float *ap, const float *bp, long h, long w,
                     float alpha, float beta, float *c, long ldc) {
    float tile[MR256 * NR256] __attribute__((aligned(32)));
    __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
    __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
    __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
    __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
    __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
    __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
    const float *a = ap, *b = bp;
    for (long p = 0; p < k; p++, a += MR256, b += NR256) {
        __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
        __m256 x;
        x = _mm256_broadcast_ss(a + 0); c00 = _mm256_fmadd_ps(x, b0, c00); c01 = _mm256_fmadd_ps(x, b1, c01);
        x = _mm256_broadcast_ss(a + 1); c10 = _mm256_fmadd_ps(x, b0, c10); c11 = _mm256_fmadd_ps(x, b1, c11);
        x = _mm256_broadcast_ss(a + 2); c20 = _mm256_fmadd_ps(x, b0, c20); c21 = _mm256_fmadd_ps(x, b1, c21);
        x = _mm256_broadcast_ss(a + 3); c30 = _mm256_fmadd_ps(x, b0, c30); c31 = _mm256_fmadd_ps(x, b1, c31);
        x = _mm256_broadcast_ss(a + 4); c40 = _mm256_fmadd_ps(x, b0, c40); c41 = _mm256_fmadd_ps(x, b1, c41);
        x = _mm256_broadcast_ss(a + 5); c50 = _mm256_fmadd_ps(x, b0, c50); c51 = _mm256_fmadd_ps(x, b1, c51);
    }
    __m256 acc[12] = {c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51};
    for (int i = 0; i < 2 * MR256; i++) _mm256_store_ps(tile + 8 * i, acc[i]);
    store_tile(tile, NR256, h, w, alpha, beta, c, ldc);
}
#endif

static void micro_portable(long k, const float *ap, const float *bp, long h, long w,
                           float alpha, float beta, float *c, long ldc) {
    float tile[MR256 * NR256];
    for (int t = 0; t < MR256 * NR256; t++) tile[t] = 0;
    const float *a = ap, *b = bp;
    for (long p = 0; p < k; p++, a += MR256, b += NR256)
        for (int i = 0; i < MR256; i++)
            for (int j = 0; j < NR256; j++) tile[i * NR256 + j] = fmaf(a[i], b[j], tile[i * NR256 + j]);
    store_tile(tile, NR256, h, w, alpha, beta, c, ldc);
}

/* Blocks of rows of A (row_block) × B's column panels × A's row panels in the block, one
   micro-kernel call each. */
static void multiply_with(micro_kernel micro, long mr, long nr, const float *pa, const float *pb,
                          long rows, long columns, long k, float alpha, float beta, float *c, long ldc) {
    long block = row_block(mr, k);
    for (long ib = 0; ib < rows; ib += block) {
        long iend = ib + block < rows ? ib + block : rows;
        for (long j0 = 0; j0 < columns; j0 += nr) {
            long w = columns - j0 < nr ? columns - j0 : nr;
            for (long i0 = ib; i0 < iend; i0 += mr) {
                long h = rows - i0 < mr ? rows - i0 : mr;
                micro(k, pa + i0 * k, pb + j0 * k, h, w, alpha, beta, c + i0 * ldc + j0, ldc);
            }
        }
    }
}

void ct_panel_multiply(const float *packedA, const float *packedB, long rows, long columns, long k,
                       float alpha, float beta, float *c, long ldc) {
    switch (ct_panel_kernel_kind()) {
#if CT_X86
    case 2: multiply_with(micro512, MR512, NR512, packedA, packedB, rows, columns, k, alpha, beta, c, ldc); break;
    case 1: multiply_with(micro256, MR256, NR256, packedA, packedB, rows, columns, k, alpha, beta, c, ldc); break;
#endif
    default: multiply_with(micro_portable, MR256, NR256, packedA, packedB, rows, columns, k, alpha, beta, c, ldc);
    }
}
