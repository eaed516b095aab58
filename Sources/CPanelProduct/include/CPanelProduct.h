#ifndef CAUSAL_TUNE_PANEL_PRODUCT_H
#define CAUSAL_TUNE_PANEL_PRODUCT_H

/* C (rows × columns, row stride ldc) = alpha · op(A) · op(B) + beta · C from packed panels;
   see panel_product.c for the arithmetic every kernel shares. */

/* The kernel this CPU runs: 2 = AVX-512 (12 × 32), 1 = AVX2 + FMA (6 × 16), 0 = portable. */
int ct_panel_kernel_kind(void);
/* Tests only: run kernel `kind` (0 … the CPU's own) from now on; panels packed before the
   call must be packed again. */
void ct_panel_force_kind(int kind);
/* Rows of A per panel (MR) and columns of B per panel (NR) of the current kernel. */
int ct_panel_mr(void);
int ct_panel_nr(void);

/* Packs steps [k0, k1) of rows [row0, row0 + rows) of op(A) (A stored k × m with lda when
   transposed) into ⌈rows / MR⌉ panels of MR × k floats at `packed` (64-byte aligned),
   zero-padded; several calls over disjoint step ranges fill the panels between them. */
void ct_panel_pack_a(int transpose, const float *a, long lda, long row0, long rows, long k0, long k1, long k,
                     float *packed);
/* Packs steps [k0, k1) of columns [column0, column0 + columns) of op(B) (B stored n × k when
   transposed) into ⌈columns / NR⌉ panels of k × NR floats, zero-padded. */
void ct_panel_pack_b(int transpose, const float *b, long ldb, long column0, long columns, long k0, long k1, long k,
                     float *packed);
/* C block = alpha · (packed A rows) · (packed B columns) + beta · C block; packedA and
   packedB point at the first panel of the block (panel boundaries), rows and columns are
   the block's true sizes. With beta = 0, C is not read. */
void ct_panel_multiply(const float *packedA, const float *packedB, long rows, long columns, long k,
                       float alpha, float beta, float *c, long ldc);
#endif
