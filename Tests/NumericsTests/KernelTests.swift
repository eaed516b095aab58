import XCTest
import Foundation
import Numerics

final class KernelTests: XCTestCase {
    func testElementwiseOpsMatchDirectLoops() {
        var rng = RandomGenerator(seed: 31)
        let n = 70_001  // above the parallel grain: exercises the split
        let a = Tensor(zeros: [n]), b = Tensor(zeros: [n])
        rng.fillNormal(a)
        rng.fillNormal(b)
        let c = Tensor(zeros: [n])
        Kernels.add(a, b, into: c)
        for i in stride(from: 0, to: n, by: 997) { XCTAssertEqual(c.data[i], a.data[i] + b.data[i]) }
        Kernels.mul(a, b, into: c)
        for i in stride(from: 0, to: n, by: 997) { XCTAssertEqual(c.data[i], a.data[i] * b.data[i]) }
        let y = b.clone()
        Kernels.axpy(0.5, a, y)
        for i in stride(from: 0, to: n, by: 997) { XCTAssertEqual(y.data[i], b.data[i] + 0.5 * a.data[i]) }
        let s = a.clone()
        Kernels.scale(s, by: -3)
        for i in stride(from: 0, to: n, by: 997) { XCTAssertEqual(s.data[i], -3 * a.data[i]) }
        // copy and zero cover every element, split over 1 and 3 workers alike.
        let saved = Parallel.threads
        defer { Parallel.threads = saved }
        for threads in [1, 3] {
            Parallel.threads = threads
            let d = Tensor(zeros: [n])
            Kernels.copy(a, into: d)
            XCTAssertEqual(d.array, a.array, "copy, \(threads) threads")
            Kernels.zero(d)
            XCTAssertTrue(d.array.allSatisfy { $0 == 0 && $0.sign == .plus }, "zero, \(threads) threads")
        }
    }

    func testReductionsMatchDirectFormulas() {
        var rng = RandomGenerator(seed: 32)
        let n = 100_003
        let x = Tensor(zeros: [n])
        rng.fillNormal(x)
        var sum = 0.0, sq = 0.0, mx = -Float.infinity
        for v in x.array { sum += Double(v); sq += Double(v) * Double(v); mx = max(mx, v) }
        XCTAssertEqual(Kernels.sum(x), sum, accuracy: 1e-9 * Double(n))
        XCTAssertEqual(Kernels.l2Norm(x), sq.squareRoot(), accuracy: 1e-9 * Double(n))
        XCTAssertEqual(Kernels.max(x), mx)
        let y = Tensor(zeros: [n])
        rng.fillNormal(y)
        var xy = 0.0
        for i in 0..<n { xy += Double(x.data[i]) * Double(y.data[i]) }
        XCTAssertEqual(Kernels.dot(x.data, y.data, count: n), xy, accuracy: 1e-9 * Double(n))
        XCTAssertEqual(Kernels.dot(x.data, x.data, count: n), Kernels.sumOfSquares(x.data, count: n))

        let m = Tensor(shape: [2, 3], values: [1, -2, 3, 4, 5, -6])
        var rs = [Float](repeating: 0, count: 2), rm = rs
        var cs: [Float] = [10, 20, 30]
        Kernels.rowSums(m.data, rows: 2, cols: 3, into: &rs)
        Kernels.rowMax(m.data, rows: 2, cols: 3, into: &rm)
        Kernels.accumulateColumnSums(m.data, rows: 2, cols: 3, into: &cs)
        XCTAssertEqual(rs, [2, 3])
        XCTAssertEqual(rm, [3, 5])
        XCTAssertEqual(cs, [15, 23, 27])  // accumulates onto 10, 20, 30
    }

    func testSoftmaxMatchesDirectFormulaAndIsStableForLargeLogits() {
        let x = Tensor(shape: [2, 4], values: [1, 2, 3, 4, 1000, 1001, 1002, 1003])
        Kernels.softmax(x)
        let e = [1.0, 2, 3, 4].map { exp($0 - 4) }
        let z = e.reduce(0, +)
        for row in 0..<2 {
            for j in 0..<4 { XCTAssertEqual(Double(x[row, j]), e[j] / z, accuracy: 1e-6) }
        }
    }

    /// fastExp against expf (≤ 2 ulp-ish over the range), and exactly 0 far below it: a −∞
    /// (masked) logit must give a masked key zero probability, in scalar and vector code alike.
    func testFastExpMatchesExpfAndUnderflowsToExactZero() {
        var worst: Float = 0
        var x: Float = -87
        while x < 88 {
            let e = Foundation.exp(x)
            worst = Swift.max(worst, abs(Kernels.fastExp(x) - e) / e)
            // Lanes are independent: lane i of a mixed vector is the scalar value of its input.
            let lanes = SIMD8<Float>(x, -x, x / 2, 0, -87.5, x + 1e-3, 88.7, -x / 3)
            let v = Kernels.fastExp(lanes)
            for i in 0..<8 { XCTAssertEqual(v[i], Kernels.fastExp(lanes[i]), "lane \(i) at \(x)") }
            x += 0.0137
        }
        XCTAssertLessThan(worst, 3e-7)
        for far: Float in [-.infinity, -1e30, -104, -90] {
            XCTAssertEqual(Kernels.fastExp(far), 0, "\(far)")
            XCTAssertEqual(Kernels.fastExp(SIMD8<Float>(repeating: far)), SIMD8<Float>(repeating: 0), "\(far)")
        }
        // A row longer than 8 with masked entries in both the vector part and the tail.
        var row: [Float] = (0..<11).map { Float($0) * 0.3 }
        row[2] = -.infinity; row[10] = -.infinity
        let t = Tensor(shape: [1, 11], values: row)
        Kernels.softmax(t)
        XCTAssertEqual(t[0, 2], 0)
        XCTAssertEqual(t[0, 10], 0)
        XCTAssertEqual(Double(t.array.reduce(0, +)), 1, accuracy: 1e-6)
    }

    func testSoftmaxBackwardMatchesFiniteDifferences() {
        var rng = RandomGenerator(seed: 33)
        let cols = 6
        let x = Tensor(zeros: [1, cols]), g = Tensor(zeros: [1, cols])
        rng.fillNormal(x)
        rng.fillNormal(g)
        func f(_ v: Tensor) -> Double {
            let y = v.clone()
            Kernels.softmax(y)
            return (0..<cols).reduce(0.0) { $0 + Double(y.data[$1]) * Double(g.data[$1]) }
        }
        let y = x.clone()
        Kernels.softmax(y)
        let dx = Tensor(shape: [1, cols], repeating: 1)
        Kernels.softmaxRowsBackward(dInput: dx.data, dOutput: g.data, output: y.data, rows: 1, cols: cols)
        let inPlace = g.clone()
        Kernels.softmaxRowBackwardInPlace(inPlace.data, output: y.data, cols, scale: 2)
        for j in 0..<cols {
            let saved = x.data[j]
            x.data[j] = saved + 1e-2; let fp = f(x)
            x.data[j] = saved - 1e-2; let fm = f(x)
            x.data[j] = saved
            let numeric = (fp - fm) / 2e-2
            XCTAssertEqual(Double(dx.data[j]) - 1, numeric, accuracy: 1e-3)  // accumulated onto 1
            XCTAssertEqual(Double(inPlace.data[j]), 2 * numeric, accuracy: 2e-3)
        }
    }

    func testGELUIsExactErfFormWithMatchingDerivative() {
        for xv in stride(from: -6.0, through: 6.0, by: 0.37) {
            let expected = 0.5 * xv * (1 + erf(xv / 2.0.squareRoot()))
            XCTAssertEqual(Double(Kernels.gelu(Float(xv))), expected, accuracy: 1e-6)
            let h = 1e-3
            let d = (0.5 * (xv + h) * (1 + erf((xv + h) / 2.0.squareRoot()))
                     - 0.5 * (xv - h) * (1 + erf((xv - h) / 2.0.squareRoot()))) / (2 * h)
            XCTAssertEqual(Double(Kernels.geluDerivative(Float(xv))), d, accuracy: 1e-5)
        }
        // tanh approximation differs from the exact form by ~1e-3 here: make sure we are exact
        XCTAssertEqual(Double(Kernels.gelu(-1.5)), -0.10021081566810608, accuracy: 1e-7)  // torch.nn.GELU()(torch.tensor([-1.5]))
    }

    func testFusedBiasGELUAndGELUBackwardKernels() {
        let pre = Tensor(shape: [2, 3], values: [0.1, -0.2, 0.3, 1.0, -1.0, 2.0])
        let bias: [Float] = [0.5, 0, -0.5]
        let out = Tensor(zeros: [2, 3])
        Kernels.biasActivationForward(.gelu, preActivation: pre.data, bias: bias, out: out.data, rows: 2, cols: 3)
        let expectedPre: [Float] = [0.6, -0.2, -0.2, 1.5, -1.0, 1.5]
        for i in 0..<6 {
            XCTAssertEqual(pre.data[i], expectedPre[i], accuracy: 1e-7)
            XCTAssertEqual(out.data[i], Kernels.gelu(pre.data[i]))
        }
        let g = Tensor(shape: [6], repeating: 2)
        Kernels.activationBackwardInPlace(.gelu, g.data, preActivation: pre.data, count: 6)
        for i in 0..<6 { XCTAssertEqual(g.data[i], 2 * Kernels.geluDerivative(expectedPre[i]), accuracy: 1e-6) }
    }

    func testSwiGLUKernelMatchesFormulaAndFiniteDifferences() {
        var rng = RandomGenerator(seed: 34)
        let (rows, H) = (2, 3)
        let x12 = Tensor(zeros: [rows, 2 * H]), g = Tensor(zeros: [rows, H])
        rng.fillNormal(x12)
        rng.fillNormal(g)
        let h = Tensor(zeros: [rows, H])
        Kernels.swiGLUForward(hidden: h.data, x12: x12.data, rows: rows, hiddenSize: H)
        for r in 0..<rows {
            for j in 0..<H {
                let a = Double(x12[r, j]), b = Double(x12[r, H + j])
                XCTAssertEqual(Double(h[r, j]), a / (1 + exp(-a)) * b, accuracy: 1e-6)
            }
        }
        let d = Tensor(zeros: [rows, 2 * H])
        Kernels.swiGLUBackward(dX12: d.data, dHidden: g.data, x12: x12.data, rows: rows, hiddenSize: H)
        func f() -> Double {
            let o = Tensor(zeros: [rows, H])
            Kernels.swiGLUForward(hidden: o.data, x12: x12.data, rows: rows, hiddenSize: H)
            return (0..<o.count).reduce(0.0) { $0 + Double(o.data[$1]) * Double(g.data[$1]) }
        }
        for i in 0..<x12.count {
            let saved = x12.data[i]
            x12.data[i] = saved + 1e-2; let fp = f()
            x12.data[i] = saved - 1e-2; let fm = f()
            x12.data[i] = saved
            XCTAssertEqual(Double(d.data[i]), (fp - fm) / 2e-2, accuracy: 1e-3)
        }
    }

    func testLayerNormKernelCachesMeanAndRstd() {
        let x = Tensor(shape: [1, 4], values: [1, 2, 3, 6])
        let w = Tensor(shape: [4], repeating: 1), b = Tensor(zeros: [4])
        let out = Tensor(zeros: [1, 4]), mean = Tensor(zeros: [1]), rstd = Tensor(zeros: [1])
        Kernels.layerNormForward(out: out.data, mean: mean.data, rstd: rstd.data, input: x.data,
                                 weight: w.data, bias: b.data, rows: 1, channels: 4, eps: 1e-6)
        XCTAssertEqual(mean.data[0], 3)
        XCTAssertEqual(Double(rstd.data[0]), 1 / (3.5 + 1e-6).squareRoot(), accuracy: 1e-6)  // var = (4+1+0+9)/4
        XCTAssertEqual(Double(out.data[3]), 3 / (3.5 + 1e-6).squareRoot(), accuracy: 1e-6)
    }
}

final class TransposeTests: XCTestCase {
    func testTransposeSwapsTheLastTwoDimensionsAcrossTileBorders() {
        let (B, R, C) = (3, 37, 70)  // not multiples of the 32 tile
        let src = Tensor(shape: [B, R, C], values: (0..<(B * R * C)).map { Float($0) })
        let dst = Tensor(zeros: [B, C, R])
        Kernels.transposeLastTwo(src, into: dst)
        for b in 0..<B {
            for i in 0..<R {
                for j in 0..<C { XCTAssertEqual(dst[b, j, i], src[b, i, j]) }
            }
        }
    }
}
