import CBLAS

/// Matrix products, all through OpenBLAS `cblas_sgemm` (row-major).
///
/// Threading: OpenBLAS runs with one thread (set on the first product), and a product of
/// at least `splitFLOPs` called outside a parallel region is split into `Parallel.threads`
/// blocks of rows of C (or of columns, when C is wider than tall), each one single-threaded
/// `sgemm` on a `Parallel` worker (results agree with the unsplit product to rounding).
/// Inside a parallel region (e.g. attention's per-head products) a product runs whole on
/// its worker.
public enum BLAS {
    /// OpenBLAS's own thread count. Leave it at 1 (the default from the first product on)
    /// unless you call BLAS from one thread only and want OpenBLAS's threading instead of
    /// ours: products are split over `Parallel` workers only while it is 1.
    public static func setThreads(_ n: Int) {
        _ = singleThreaded
        ct_blas_set_threads(Int32(n))
    }
    public static var threads: Int {
        _ = singleThreaded
        return Int(ct_blas_get_threads())
    }

    /// Products with at least this many multiply-adds (m·n·k) are split over workers.
    public static let splitFLOPs = 1 << 19

    private static let singleThreaded: Void = { ct_blas_set_threads(1) }()

    /// `C = alpha · op(A) · op(B) + beta · C` with row-major `A` (m×k after `op`),
    /// `B` (k×n after `op`), `C` (m×n) and explicit leading dimensions.
    @inline(__always)
    public static func gemm(
        transposeA: Bool, transposeB: Bool,
        m: Int, n: Int, k: Int,
        alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0,
        c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        if m == 0 || n == 0 { return }
        if k == 0 {
            // BLAS leaves C scaled by beta; make that explicit so callers can rely on it.
            for i in 0..<m {
                let row = c + i * ldc
                for j in 0..<n { row[j] = beta == 0 ? 0 : beta * row[j] }
            }
            return
        }
        _ = singleThreaded
        let workers = Parallel.threads
        if workers > 1 && m * n * k >= splitFLOPs && !Parallel.isInsideRegion && ct_blas_get_threads() == 1 {
            // Whole register tiles of the kernel per block: 4 rows or 16 columns of C
            // (row-major C is OpenBLAS's column-major Cᵀ, tiled 16 × 4).
            let splitRows = m >= n
            let extent = splitRows ? m : n, tile = splitRows ? 4 : 16
            let parts = Swift.min(workers, Swift.max(1, extent / (2 * tile)))
            if parts > 1 {
                let per = ((extent + parts - 1) / parts + tile - 1) / tile * tile
                Parallel.forEach(parts) { range in
                    for p in range {
                        let lo = p * per, hi = Swift.min(extent, lo + per)
                        if lo >= hi { continue }
                        if splitRows {
                            sgemm(transposeA, transposeB, hi - lo, n, k, alpha,
                                  transposeA ? a + lo : a + lo * lda, lda, b, ldb, beta, c + lo * ldc, ldc)
                        } else {
                            sgemm(transposeA, transposeB, m, hi - lo, k, alpha,
                                  a, lda, transposeB ? b + lo * ldb : b + lo, ldb, beta, c + lo, ldc)
                        }
                    }
                }
                return
            }
        }
        sgemm(transposeA, transposeB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
    }

    @inline(__always)
    private static func sgemm(_ transposeA: Bool, _ transposeB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float,
                              _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
                              _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int) {
        cblas_sgemm(CblasRowMajor,
                    transposeA ? CblasTrans : CblasNoTrans,
                    transposeB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha,
                    a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// `C = alpha · op(A) · op(B) + beta · C` for tensors whose leading dimensions are
    /// flattened into rows: `A` is `[..., ka]`, read as a matrix of `count / ka` rows.
    /// With `transposeA`, `A` is stored k×m; with `transposeB`, `B` is stored n×k.
    public static func matmul(_ a: Tensor, _ b: Tensor, into c: Tensor,
                              transposeA: Bool = false, transposeB: Bool = false,
                              alpha: Float = 1, beta: Float = 0) {
        precondition(b.rank == 2, "matmul: B must be 2-D, got \(b.shape)")
        let aCols = a.shape.last ?? 1
        let aRows = a.count / Swift.max(aCols, 1)
        let (m, k) = transposeA ? (aCols, aRows) : (aRows, aCols)
        let (kb, n) = transposeB ? (b.shape[1], b.shape[0]) : (b.shape[0], b.shape[1])
        precondition(k == kb, "matmul: inner dimensions differ, A \(a.shape) B \(b.shape)")
        precondition(c.count == m * n, "matmul: C \(c.shape) is not \(m)×\(n)")
        gemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha,
             a: a.data, lda: aCols, b: b.data, ldb: b.shape[1], beta: beta, c: c.data, ldc: n)
    }

    /// Batched products over the first dimension: `C[i] = alpha · op(A[i]) · op(B[i]) + beta · C[i]`,
    /// `A` `[batch, ·, ·]`, `B` `[batch, ·, ·]` (or 2-D, shared by every batch item), `C` `[batch, m, n]`.
    public static func batchedMatmul(_ a: Tensor, _ b: Tensor, into c: Tensor,
                                     transposeA: Bool = false, transposeB: Bool = false,
                                     alpha: Float = 1, beta: Float = 0) {
        precondition(a.rank == 3 && c.rank == 3 && (b.rank == 3 || b.rank == 2),
                     "batchedMatmul: shapes A \(a.shape) B \(b.shape) C \(c.shape)")
        let batch = a.shape[0]
        let sharedB = b.rank == 2
        precondition(c.shape[0] == batch && (sharedB || b.shape[0] == batch), "batchedMatmul: batch sizes differ")
        let (ar, ac) = (a.shape[1], a.shape[2])
        let (br, bc) = sharedB ? (b.shape[0], b.shape[1]) : (b.shape[1], b.shape[2])
        let (m, k) = transposeA ? (ac, ar) : (ar, ac)
        let (kb, n) = transposeB ? (bc, br) : (br, bc)
        precondition(k == kb && c.shape[1] == m && c.shape[2] == n,
                     "batchedMatmul: A \(a.shape) B \(b.shape) C \(c.shape) do not fit")
        for i in 0..<batch {
            gemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha,
                 a: a.data + i * ar * ac, lda: ac,
                 b: b.data + (sharedB ? 0 : i * br * bc), ldb: bc,
                 beta: beta, c: c.data + i * m * n, ldc: n)
        }
    }
}
