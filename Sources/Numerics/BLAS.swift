import CBLAS

/// Matrix products, through OpenBLAS `cblas_sgemm` (row-major), or our own packed-panel
/// kernel when a run asks for it (`PanelProduct`, `CAUSAL_TUNE_PRODUCTS=panels`).
///
/// Threading: OpenBLAS runs with one thread (set on the first product). A product is cut
/// into the tiles of `ProductTiling` — chosen from its shape alone — and the tiles run on
/// `Parallel` workers (or one after another inside a parallel region, e.g. attention's
/// per-head products, or with one thread). Every tile is the same single-threaded `sgemm`
/// call whoever runs it, so C is bit-identical for any thread count.
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

    private static let singleThreaded: Void = { ct_blas_set_threads(1) }()

    /// The kernel family OpenBLAS runs (`OPENBLAS_CORETYPE` overrides its CPUID choice).
    public static var coreName: String { String(cString: ct_blas_core_name()) }

    /// The kernel family the CLI chose itself (from the CPU's flags, re-executing with
    /// `OPENBLAS_CORETYPE` set) because OpenBLAS had fallen back to generic kernels and the
    /// variable was unset (target `BLASKernelChoice`); nil when it chose none. Recorded by the
    /// CLI for reports.
    nonisolated(unsafe) public static var kernelChosenAtStart: String?

    /// Generic kernels that leave most of a modern CPU's speed unused (what OpenBLAS falls
    /// back to when a VM masks the CPU model).
    public static var runsGenericKernels: Bool { ct_blas_core_is_generic(ct_blas_core_name()) != 0 }

    /// `C = alpha · op(A) · op(B) + beta · C` with row-major `A` (m×k after `op`),
    /// `B` (k×n after `op`), `C` (m×n) and explicit leading dimensions.
    ///
    /// `whole: true` makes it one `sgemm` call, never tiled — for a call site whose products
    /// always run one per worker inside a region of their own (attention's per-head
    /// products), where tiles would only add packing. It is a property of the call site,
    /// not of the thread count, so the bits stay the same for any number of threads.
    @inline(__always)
    public static func gemm(
        transposeA: Bool, transposeB: Bool,
        m: Int, n: Int, k: Int,
        alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0,
        c: UnsafeMutablePointer<Float>, ldc: Int,
        whole: Bool = false
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
        if PanelProduct.kernel == .panels && !whole && PanelProduct.runs(m: m, n: n, k: k) {
            PanelProduct.gemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha,
                              a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
            return
        }
        _ = singleThreaded
        let tiling = whole ? ProductTiling.single : ProductTiling(m: m, n: n, k: k)
        if tiling.count == 1 || ct_blas_get_threads() != 1 {
            // One tile, or OpenBLAS's own threading asked for (`setThreads`): one call.
            sgemm(transposeA, transposeB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
            return
        }
        // Outside a region the tiles go to the workers one at a time from a shared counter;
        // inside one (or with one thread) they run inline, in order — the same tiles either
        // way. A counter rather than fixed runs of tiles per worker: with several tiles per
        // worker (a partition width above the thread count) a slow tile then delays one
        // worker's next tile instead of the whole region — the scaling model put ViT-L's
        // products at 60 % on 64 threads with 256 tiles in fixed runs.
        Parallel.forEachDynamic(tiling.count, workers: Parallel.threads) { t, _ in
            let (rows, cols) = tiling.tile(t, m: m, n: n)
            if rows.isEmpty || cols.isEmpty { return }
            let ap = transposeA ? a + rows.lowerBound : a + rows.lowerBound * lda
            let bp = transposeB ? b + cols.lowerBound * ldb : b + cols.lowerBound
            sgemm(transposeA, transposeB, rows.count, cols.count, k, alpha, ap, lda, bp, ldb, beta,
                  c + rows.lowerBound * ldc + cols.lowerBound, ldc)
        }
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
