import CPanelProduct
import XCTest
import Numerics

/// Our packed-panel product (`CAUSAL_TUNE_PRODUCTS=panels`): right, and the same bits for
/// every thread count, tiling and SIMD kernel — checked against a chain of fused
/// multiply-adds written here, element by element, so the check holds on any CPU.
final class PanelProductTests: XCTestCase {
    override func setUp() {
        super.setUp()
        PanelProduct.kernel = .panels
    }

    override func tearDown() {
        PanelProduct.kernel = .openblas
        ct_panel_force_kind(-1)   // back to the CPU's own kernel
        super.tearDown()
    }

    struct Case {
        var tA: Bool, tB: Bool, m: Int, n: Int, k: Int
        var alpha: Float, beta: Float
        var lda: Int { (tA ? m : k) + 1 }
        var ldb: Int { (tB ? k : n) + 2 }
        var ldc: Int { n + 3 }
    }

    func operands(_ c: Case, seed: UInt64) -> (a: [Float], b: [Float], c: [Float]) {
        var rng = RandomGenerator(seed: seed)
        let a = (0..<((c.tA ? c.k : c.m) * c.lda)).map { _ in rng.uniform(-1, 1) }
        let b = (0..<((c.tB ? c.n : c.k) * c.ldb)).map { _ in rng.uniform(-1, 1) }
        let cc = (0..<(c.m * c.ldc)).map { _ in rng.uniform(-1, 1) }
        return (a, b, cc)
    }

    /// The panel kernel itself (`direct`), or `BLAS.gemm` with `kernel` as set.
    func run(_ c: Case, _ x: (a: [Float], b: [Float], c: [Float]), direct: Bool = true, whole: Bool = false) -> [Float] {
        var got = x.c
        x.a.withUnsafeBufferPointer { ap in
            x.b.withUnsafeBufferPointer { bp in
                got.withUnsafeMutableBufferPointer { cp in
                    if direct {
                        PanelProduct.gemm(transposeA: c.tA, transposeB: c.tB, m: c.m, n: c.n, k: c.k, alpha: c.alpha,
                                          a: ap.baseAddress!, lda: c.lda, b: bp.baseAddress!, ldb: c.ldb,
                                          beta: c.beta, c: cp.baseAddress!, ldc: c.ldc)
                    } else {
                        BLAS.gemm(transposeA: c.tA, transposeB: c.tB, m: c.m, n: c.n, k: c.k, alpha: c.alpha,
                                  a: ap.baseAddress!, lda: c.lda, b: bp.baseAddress!, ldb: c.ldb,
                                  beta: c.beta, c: cp.baseAddress!, ldc: c.ldc, whole: whole)
                    }
                }
            }
        }
        return got
    }

    /// The arithmetic every kernel promises: acc = fma chain over p from 0, then alpha·acc,
    /// plus beta·C by one more fused multiply-add when beta ≠ 0. Padding of C untouched.
    func fusedChain(_ c: Case, _ x: (a: [Float], b: [Float], c: [Float])) -> [Float] {
        var out = x.c
        for i in 0..<c.m {
            for j in 0..<c.n {
                var acc: Float = 0
                for p in 0..<c.k {
                    let av = c.tA ? x.a[p * c.lda + i] : x.a[i * c.lda + p]
                    let bv = c.tB ? x.b[j * c.ldb + p] : x.b[p * c.ldb + j]
                    acc = acc.addingProduct(av, bv)
                }
                let scaled = c.alpha * acc
                out[i * c.ldc + j] = c.beta == 0 ? scaled : scaled.addingProduct(c.beta, x.c[i * c.ldc + j])
            }
        }
        return out
    }

    var cases: [Case] {
        var list = [Case]()
        for tA in [false, true] {
            for tB in [false, true] {
                // Edges of every kernel's panels (12 × 32 and 6 × 16), a single row or column,
                // k = 1, and products large enough to be cut into tiles and packed in parallel.
                for (m, n, k) in [(1, 1, 1), (1, 37, 5), (29, 1, 7), (13, 33, 1), (12, 32, 64),
                                  (25, 49, 17), (97, 130, 70), (200, 300, 150)] {
                    list.append(Case(tA: tA, tB: tB, m: m, n: n, k: k, alpha: 1, beta: 0))
                }
                list.append(Case(tA: tA, tB: tB, m: 61, n: 75, k: 40, alpha: 0.7, beta: 0.3))
                list.append(Case(tA: tA, tB: tB, m: 130, n: 200, k: 90, alpha: -1.5, beta: 1))
            }
        }
        return list
    }

    func testEveryElementIsTheFusedChainOverKInOrder() {
        for (index, c) in cases.enumerated() {
            let x = operands(c, seed: UInt64(100 + index))
            XCTAssertEqual(run(c, x), fusedChain(c, x), "\(c)")
        }
    }

    func testEveryKernelThisCPUCanRunGivesTheSameBits() {
        let own = Int(ct_panel_kernel_kind())
        let shapes = [Case(tA: false, tB: true, m: 97, n: 130, k: 70, alpha: 1, beta: 0),
                      Case(tA: true, tB: false, m: 61, n: 75, k: 40, alpha: 0.7, beta: 0.3)]
        for (index, c) in shapes.enumerated() {
            let x = operands(c, seed: UInt64(200 + index))
            let want = fusedChain(c, x)
            for kind in 0...own {
                ct_panel_force_kind(Int32(kind))
                XCTAssertEqual(run(c, x), want, "kernel \(kind), \(c)")
            }
        }
    }

    func testBitsAreTheSameForEveryThreadCountWholeAndInsideARegion() {
        let saved = Parallel.threads
        defer { Parallel.threads = saved }
        // Many tiles; then panels long enough to be packed in ranges of k (B's, then A's too),
        // ranges that end off the 16-step blocks.
        for (index, c) in [Case(tA: false, tB: true, m: 301, n: 517, k: 96, alpha: 1, beta: 0),
                           Case(tA: true, tB: true, m: 40, n: 70, k: 600, alpha: 1, beta: 0),
                           Case(tA: false, tB: true, m: 30, n: 45, k: 1401, alpha: 0.5, beta: 1)].enumerated() {
            checkThreadCounts(c, seed: UInt64(300 + index))
        }
    }

    func checkThreadCounts(_ c: Case, seed: UInt64) {
        let x = operands(c, seed: seed)
        Parallel.threads = 1
        let one = run(c, x)
        XCTAssertEqual(one, fusedChain(c, x))
        for threads in [2, 3, 8, 16, 64] {
            Parallel.threads = threads
            XCTAssertEqual(run(c, x), one, "\(threads) threads")
        }
        XCTAssertEqual(run(c, x, direct: false), one, "through BLAS.gemm")
        Parallel.threads = 4
        var inside = [Float]()
        Parallel.forEach(2) { r in if r.lowerBound == 0 { inside = self.run(c, x, direct: false) } }
        XCTAssertEqual(inside, one, "inside a region")
    }

    /// `BLAS.gemm` hands the panel kernel the products of ≥ 2^19 multiply-adds that are not
    /// `whole`; the others stay on `cblas_sgemm` (one call, whatever the thread count).
    func testBLASRunsLargeProductsOnPanelsAndSmallOrWholeOnesOnOpenBLAS() {
        let large = Case(tA: true, tB: false, m: 130, n: 150, k: 60, alpha: 1, beta: 0)      // 1.2 M
        let small = Case(tA: false, tB: true, m: 60, n: 70, k: 50, alpha: 1, beta: 0)        // 0.2 M
        XCTAssertTrue(PanelProduct.runs(m: large.m, n: large.n, k: large.k))
        XCTAssertFalse(PanelProduct.runs(m: small.m, n: small.n, k: small.k))
        let x = operands(large, seed: 600), y = operands(small, seed: 601)
        XCTAssertEqual(run(large, x, direct: false), fusedChain(large, x))
        PanelProduct.kernel = .openblas
        let wholeOnOpenBLAS = run(large, x, direct: false, whole: true)
        let smallOnOpenBLAS = run(small, y, direct: false)
        PanelProduct.kernel = .panels
        XCTAssertEqual(run(large, x, direct: false, whole: true), wholeOnOpenBLAS)
        XCTAssertEqual(run(small, y, direct: false), smallOnOpenBLAS)
    }

    func testBetaZeroNeverReadsC() {
        let c = Case(tA: false, tB: false, m: 40, n: 50, k: 30, alpha: 1, beta: 0)
        var x = operands(c, seed: 400)
        x.c = x.c.map { _ in Float.nan }
        let got = run(c, x)
        for i in 0..<c.m { for j in 0..<c.n { XCTAssertFalse(got[i * c.ldc + j].isNaN) } }
    }

    func testCloseToTheExactProduct() {
        // The chain is one float sum of k terms: against a Double sum within k ulp-ish.
        let c = Case(tA: true, tB: true, m: 77, n: 91, k: 300, alpha: 1, beta: 0)
        let x = operands(c, seed: 500)
        let got = run(c, x)
        for i in 0..<c.m {
            for j in 0..<c.n {
                var s = 0.0
                for p in 0..<c.k { s += Double(x.a[p * c.lda + i]) * Double(x.b[j * c.ldb + p]) }
                XCTAssertEqual(Double(got[i * c.ldc + j]), s, accuracy: 1e-4)
            }
        }
    }

    func testProductKernelFromTheEnvironment() {
        XCTAssertNil(PanelProduct.configureFromEnvironment([:]))
        XCTAssertEqual(PanelProduct.kernel, .panels)
        XCTAssertNil(PanelProduct.configureFromEnvironment(["CAUSAL_TUNE_PRODUCTS": "openblas"]))
        XCTAssertEqual(PanelProduct.kernel, .openblas)
        let message = PanelProduct.configureFromEnvironment(["CAUSAL_TUNE_PRODUCTS": "mkl"])
        XCTAssertTrue(message?.contains("CAUSAL_TUNE_PRODUCTS") ?? false)
        XCTAssertTrue(message?.contains("'mkl'") ?? false)
        XCTAssertEqual(PanelProduct.kernel, .openblas)
        XCTAssertNil(PanelProduct.configureFromEnvironment(["CAUSAL_TUNE_PRODUCTS": "panels"]))
        XCTAssertEqual(PanelProduct.kernel, .panels)
    }
}
