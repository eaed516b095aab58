import XCTest
import Numerics

final class BLASTests: XCTestCase {
    /// C = alpha op(A) op(B) + beta C by plain loops in Double.
    func naive(_ tA: Bool, _ tB: Bool, m: Int, n: Int, k: Int, alpha: Float, a: [Float], lda: Int,
               b: [Float], ldb: Int, beta: Float, c: [Float], ldc: Int) -> [Float] {
        var out = c
        for i in 0..<m {
            for j in 0..<n {
                var s = 0.0
                for p in 0..<k {
                    let av = tA ? a[p * lda + i] : a[i * lda + p]
                    let bv = tB ? b[j * ldb + p] : b[p * ldb + j]
                    s += Double(av) * Double(bv)
                }
                out[i * ldc + j] = Float(Double(alpha) * s + Double(beta) * Double(c[i * ldc + j]))
            }
        }
        return out
    }

    /// `BLAS.gemm` on arrays: returns alpha op(A) op(B) + beta C (C given row-major with `ldc`).
    func gemm(_ tA: Bool, _ tB: Bool, m: Int, n: Int, k: Int, alpha: Float, a: [Float], lda: Int,
              b: [Float], ldb: Int, beta: Float, c: [Float], ldc: Int) -> [Float] {
        var got = c
        a.withUnsafeBufferPointer { ap in
            b.withUnsafeBufferPointer { bp in
                got.withUnsafeMutableBufferPointer { cp in
                    BLAS.gemm(transposeA: tA, transposeB: tB, m: m, n: n, k: k, alpha: alpha,
                              a: ap.baseAddress!, lda: lda, b: bp.baseAddress!, ldb: ldb,
                              beta: beta, c: cp.baseAddress!, ldc: ldc)
                }
            }
        }
        return got
    }

    func testGemmMatchesNaiveLoopForEveryTransposeCaseWithPaddedLeadingDimensions() {
        var rng = RandomGenerator(seed: 21)
        let (m, n, k) = (5, 7, 3)
        for tA in [false, true] {
            for tB in [false, true] {
                // leading dimensions wider than the matrices, as in strided views of qkv
                let lda = (tA ? m : k) + 2, ldb = (tB ? k : n) + 3, ldc = n + 1
                let aRows = tA ? k : m, bRows = tB ? n : k
                let a = (0..<(aRows * lda)).map { _ in rng.uniform(-1, 1) }
                let b = (0..<(bRows * ldb)).map { _ in rng.uniform(-1, 1) }
                let c = (0..<(m * ldc)).map { _ in rng.uniform(-1, 1) }
                let got = gemm(tA, tB, m: m, n: n, k: k, alpha: 0.7, a: a, lda: lda, b: b, ldb: ldb,
                               beta: 0.3, c: c, ldc: ldc)
                let want = naive(tA, tB, m: m, n: n, k: k, alpha: 0.7, a: a, lda: lda, b: b, ldb: ldb,
                                 beta: 0.3, c: c, ldc: ldc)
                for i in 0..<got.count {
                    XCTAssertEqual(got[i], want[i], accuracy: 1e-5, "transposeA \(tA) transposeB \(tB) at \(i)")
                }
            }
        }
    }

    func testMatmulAndBatchedMatmulMatchNaiveLoop() {
        var rng = RandomGenerator(seed: 22)
        for tA in [false, true] {
            for tB in [false, true] {
                let a = Tensor(zeros: tA ? [2, 4, 3] : [2, 3, 4]), b = Tensor(zeros: tB ? [5, 4] : [4, 5])
                rng.fillNormal(a)
                rng.fillNormal(b)
                let c = Tensor(zeros: [2, 3, 5])
                BLAS.batchedMatmul(a, b, into: c, transposeA: tA, transposeB: tB)
                for i in 0..<2 {
                    let want = naive(tA, tB, m: 3, n: 5, k: 4, alpha: 1, a: a.slice(i).array, lda: tA ? 3 : 4,
                                     b: b.array, ldb: tB ? 4 : 5, beta: 0, c: [Float](repeating: 0, count: 15), ldc: 5)
                    for j in 0..<15 { XCTAssertEqual(c.slice(i).array[j], want[j], accuracy: 1e-5) }
                }
                if !tA {
                    let flat = Tensor(zeros: [6, 5])
                    BLAS.matmul(a, b, into: flat, transposeB: tB)
                    XCTAssertEqual(flat.array, c.array)
                }
            }
        }
    }

    func testGemmWithZeroInnerDimensionScalesByBeta() {
        var c: [Float] = [1, 2, 3, 4]
        let a: [Float] = [0], b: [Float] = [0]
        c.withUnsafeMutableBufferPointer { cp in
            BLAS.gemm(transposeA: false, transposeB: false, m: 2, n: 2, k: 0, a: a, lda: 1, b: b, ldb: 2,
                      beta: 0.5, c: cp.baseAddress!, ldc: 2)
        }
        XCTAssertEqual(c, [0.5, 1, 1.5, 2])
    }

    func testProductsSplitOverWorkersMatchTheNaiveLoopInBothSplitDirections() {
        // Large enough to be cut into tiles (m·n·k ≥ ProductTiling.minimumMACs): tall C, wide C.
        let saved = Parallel.threads
        defer { Parallel.threads = saved }
        Parallel.threads = 3
        var rng = RandomGenerator(seed: 23)
        for (m, n, k) in [(203, 370, 150), (29, 3010, 110)] {
            XCTAssertGreaterThan(ProductTiling(m: m, n: n, k: k).count, 1)
            for tA in [false, true] {
                for tB in [false, true] {
                    let lda = (tA ? m : k) + 1, ldb = (tB ? k : n) + 2, ldc = n + 3
                    let a = (0..<((tA ? k : m) * lda)).map { _ in rng.uniform(-1, 1) }
                    let b = (0..<((tB ? n : k) * ldb)).map { _ in rng.uniform(-1, 1) }
                    let c = (0..<(m * ldc)).map { _ in rng.uniform(-1, 1) }
                    let got = gemm(tA, tB, m: m, n: n, k: k, alpha: 0.5, a: a, lda: lda, b: b, ldb: ldb,
                                   beta: 0.25, c: c, ldc: ldc)
                    let want = naive(tA, tB, m: m, n: n, k: k, alpha: 0.5, a: a, lda: lda, b: b, ldb: ldb,
                                     beta: 0.25, c: c, ldc: ldc)
                    var worst: Float = 0
                    for i in 0..<got.count { worst = Swift.max(worst, abs(got[i] - want[i])) }
                    XCTAssertLessThan(worst, 1e-4, "\(m)×\(n)×\(k) transposeA \(tA) transposeB \(tB)")
                }
            }
        }
    }

    func testNestedParallelRegionsRunInlineAndCoverEveryIndexOnce() {
        let saved = Parallel.threads
        defer { Parallel.threads = saved }
        Parallel.threads = 4
        let hits = UnsafeMutablePointer<Int32>.allocate(capacity: 64 * 50)
        defer { hits.deallocate() }
        hits.initialize(repeating: 0, count: 64 * 50)
        XCTAssertFalse(Parallel.isInsideRegion)
        Parallel.forEach(64) { outer in
            XCTAssertTrue(Parallel.isInsideRegion)
            for i in outer {
                Parallel.forEach(50) { inner in
                    XCTAssertEqual(inner, 0..<50)   // inline: one chunk
                    for j in inner { hits[i * 50 + j] += 1 }
                }
            }
        }
        XCTAssertFalse(Parallel.isInsideRegion)
        XCTAssertTrue((0..<(64 * 50)).allSatisfy { hits[$0] == 1 })
    }

    func testProductTilingCoversEveryElementOnceAndDependsOnTheShapeAlone() {
        for (m, n, k) in [(1, 1, 1), (7, 3, 5), (257, 1152, 384), (1025, 4096, 1024), (16, 384, 1536), (99, 384, 256),
                          (2, 9000, 64), (9000, 2, 64), (1025, 1025, 64)] {
            assertTilesCoverOnce(ProductTiling(m: m, n: n, k: k), m: m, n: n, width: ProductTiling.defaultWidth,
                                 "\(m)×\(n)×\(k)")
        }
        XCTAssertEqual(ProductTiling(m: 100, n: 50, k: 50).count, 1)          // below the minimum: whole
        XCTAssertEqual(ProductTiling(m: 1025, n: 4096, k: 1024).count, ProductTiling.defaultWidth)
    }

    /// A wider partition cuts large products into up to `width` tiles (ViT-L's fc1 into 64
    /// blocks of about 2^26 multiply-adds, its 1-GMAC products into as many), still covering C
    /// once with register-aligned blocks; width 1 never cuts.
    func testWidePartitionsCutLargeProductsIntoUpToWidthTiles() {
        XCTAssertEqual(ProductTiling(m: 1025, n: 4096, k: 1024, width: 64).count, 64)
        XCTAssertEqual(ProductTiling(m: 1025, n: 1024, k: 1024, width: 64).count, 64)
        XCTAssertEqual(ProductTiling(m: 1025, n: 4096, k: 1024, width: 1).count, 1)
        XCTAssertEqual(ProductTiling(m: 1025, n: 4096, k: 1024, width: 4), ProductTiling(m: 1025, n: 4096, k: 1024))
        // Thin products whose column tiles repack almost nothing (the DCT's 32 × 32768 × 32,
        // 2^25 multiply-adds) go past the multiply-add target down to 2^19 a tile — but only
        // beyond the default width, and not where the extra packing is large (the 100-token
        // products keep the multiply-add count's 8).
        let dct = ProductTiling(m: 32, n: 32768, k: 32, width: 64)
        XCTAssertEqual(dct.count, 64)
        XCTAssertEqual(dct.rowTiles, 1)
        XCTAssertEqual(ProductTiling(m: 32, n: 32768, k: 32, width: 16).count, 16)
        XCTAssertEqual(ProductTiling(m: 32, n: 32768, k: 32, width: 256).count, 64)   // 2^19 a tile
        XCTAssertEqual(ProductTiling(m: 32, n: 32768, k: 32, width: 4), ProductTiling(m: 32, n: 32768, k: 32))
        XCTAssertEqual(ProductTiling(m: 99, n: 1024, k: 1024, width: 64).count, 8)
        for width in [8, 16, 64, 256] {
            for (m, n, k) in [(1025, 4096, 1024), (1025, 1024, 4096), (4096, 1024, 1025), (257, 1152, 384), (2, 9000, 64),
                              (9000, 2, 64), (1025, 3072, 1024), (32, 32768, 32), (32768, 32, 32), (99, 1024, 1024)] {
                assertTilesCoverOnce(ProductTiling(m: m, n: n, k: k, width: width), m: m, n: n, width: width,
                                     "width \(width) \(m)×\(n)×\(k)")
            }
        }
    }

    /// At a partition width of 16 a product still gives the same bits for 1, 3, 8 and 16
    /// workers: the width, not the thread count, decides the tiles.
    func testWidePartitionGivesIdenticalBitsForEveryThreadCount() {
        let savedThreads = Parallel.threads, savedWidth = ProductTiling.width
        defer { Parallel.threads = savedThreads; ProductTiling.width = savedWidth }
        ProductTiling.width = 16
        var rng = RandomGenerator(seed: 31)
        let (m, n, k) = (257, 1536, 384)
        XCTAssertEqual(ProductTiling(m: m, n: n, k: k).count, 16)
        let a = (0..<(m * k)).map { _ in rng.uniform(-1, 1) }, b = (0..<(n * k)).map { _ in rng.uniform(-1, 1) }
        let c = [Float](repeating: 0, count: m * n)
        Parallel.threads = 1
        let reference = gemm(false, true, m: m, n: n, k: k, alpha: 1, a: a, lda: k, b: b, ldb: k, beta: 0, c: c, ldc: n)
        for threads in [3, 8, 16] {
            Parallel.threads = threads
            let got = gemm(false, true, m: m, n: n, k: k, alpha: 1, a: a, lda: k, b: b, ldb: k, beta: 0, c: c, ldc: n)
            XCTAssertTrue(got.elementsEqual(reference) { $0.bitPattern == $1.bitPattern }, "\(threads) threads differ from 1")
        }
    }

    func testPartitionWidthFromTheEnvironmentIsAPowerOfTwo() {
        let saved = ProductTiling.width
        defer { ProductTiling.width = saved }
        XCTAssertNil(ProductTiling.configureFromEnvironment([:]))
        XCTAssertEqual(ProductTiling.width, saved)
        for bad in ["0", "3", "x", "-4", "2048", ""] {
            let message = ProductTiling.configureFromEnvironment(["CAUSAL_TUNE_PARTITION_WIDTH": bad])
            XCTAssertNotNil(message, bad)
            XCTAssertTrue(message?.contains("CAUSAL_TUNE_PARTITION_WIDTH") ?? false)
            XCTAssertEqual(ProductTiling.width, saved, "a bad value leaves the width alone")
        }
        XCTAssertNil(ProductTiling.configureFromEnvironment(["CAUSAL_TUNE_PARTITION_WIDTH": "64"]))
        XCTAssertEqual(ProductTiling.width, 64)
    }

    /// At most `width` non-empty, register-aligned tiles that cover every element of C once.
    private func assertTilesCoverOnce(_ tiling: ProductTiling, m: Int, n: Int, width: Int, _ label: String) {
        XCTAssertLessThanOrEqual(tiling.count, width, label)
        XCTAssertEqual(tiling.rowsPerTile % 4, 0, label)
        XCTAssertEqual(tiling.columnsPerTile % 16, 0, label)
        var hits = [Int](repeating: 0, count: m * n)
        for t in 0..<tiling.count {
            let (rows, cols) = tiling.tile(t, m: m, n: n)
            XCTAssertFalse(rows.isEmpty || cols.isEmpty, "\(label): tile \(t) is empty")
            for i in rows { for j in cols { hits[i * n + j] += 1 } }
        }
        XCTAssertTrue(hits.allSatisfy { $0 == 1 }, "\(label): tiles overlap or leave gaps")
    }

    /// The determinism guarantee at its root: the same product gives the same bits with 1 … 8
    /// workers and inside a parallel region (where the tiles run inline), for shapes of a ViT
    /// step (qkv, fc2, weight gradients with k = tokens, thin token products) and every
    /// transpose case, with beta 0 and 1.
    func testProductsGiveIdenticalBitsForEveryThreadCountAndInsideARegion() {
        let saved = Parallel.threads
        defer { Parallel.threads = saved }
        var rng = RandomGenerator(seed: 29)
        for (m, n, k) in [(257, 1152, 384), (257, 384, 1536), (384, 384, 256), (99, 384, 256), (17, 1152, 384), (203, 37, 90)] {
            for tA in [false, true] {
                for tB in [false, true] {
                    let lda = tA ? m : k, ldb = tB ? k : n, ldc = n
                    let a = (0..<((tA ? k : m) * lda)).map { _ in rng.uniform(-1, 1) }
                    let b = (0..<((tB ? n : k) * ldb)).map { _ in rng.uniform(-1, 1) }
                    let c = (0..<(m * ldc)).map { _ in rng.uniform(-1, 1) }
                    for (alpha, beta): (Float, Float) in [(1, 0), (0.125, 1)] {
                        Parallel.threads = 1
                        let reference = gemm(tA, tB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                                             beta: beta, c: c, ldc: ldc)
                        for threads in 2...8 {
                            Parallel.threads = threads
                            let got = gemm(tA, tB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                                           beta: beta, c: c, ldc: ldc)
                            XCTAssertTrue(got.elementsEqual(reference) { $0.bitPattern == $1.bitPattern },
                                          "\(m)×\(n)×\(k) tA \(tA) tB \(tB) alpha \(alpha): \(threads) threads differ from 1")
                        }
                        Parallel.threads = 4
                        var inside: [Float] = []
                        Parallel.forEach(2) { r in
                            if r.contains(0) {
                                inside = self.gemm(tA, tB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                                                   beta: beta, c: c, ldc: ldc)
                            }
                        }
                        XCTAssertTrue(inside.elementsEqual(reference) { $0.bitPattern == $1.bitPattern },
                                      "\(m)×\(n)×\(k) tA \(tA) tB \(tB): inside a region differs")
                    }
                }
            }
        }
    }
}
