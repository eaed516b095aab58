import Foundation
import Numerics
import PEFT
import XCTest

/// The orthonormal 2-D transforms: definitions, orthonormality and round trips.
final class TransformTests: XCTestCase {
    private func randomMaps(_ count: Int, seed: UInt64) -> Tensor {
        var rng = RandomGenerator(seed: seed)
        let t = Tensor(zeros: [count])
        rng.fillNormal(t)
        return t
    }

    private func maxAbs(_ a: [Float]) -> Float { a.reduce(0) { Swift.max($0, abs($1)) } }

    func testEveryTransformRoundTripsToIdentityWithin1e6() {
        for kind in TransformKind.allCases {
            for (h, w, c) in [(4, 6, 5), (8, 8, 3), (16, 16, 7), (5, 7, 2), (32, 12, 4)] {
                let t = SpectralTransform(kind: kind, h: h, w: w)
                let x = randomMaps(2 * h * w * c, seed: 7)
                let f = Tensor(zeros: x.shape), y = Tensor(zeros: x.shape)
                t.forward(x, into: f, channels: c)
                t.inverse(f, into: y, channels: c)
                let err = zip(x.array, y.array).map { abs($0 - $1) }.max()!
                XCTAssertLessThan(err, 1e-6 * Swift.max(1, maxAbs(x.array)), "\(kind) \(h)×\(w)")
                // Orthonormal: energy is preserved.
                let ex = x.array.reduce(0.0) { $0 + Double($1 * $1) }
                let ef = f.array.reduce(0.0) { $0 + Double($1 * $1) }
                XCTAssertEqual(ef, ex, accuracy: 1e-5 * ex, "\(kind) \(h)×\(w) energy")
            }
        }
    }

    func testDCTMatchesTheSpecFormulaForEveryChannel() {
        let (h, w, c) = (5, 6, 3)
        let x = randomMaps(h * w * c, seed: 3)
        let f = Tensor(zeros: x.shape)
        SpectralTransform(kind: .dct, h: h, w: w).forward(x, into: f, channels: c)
        func alpha(_ k: Int, _ n: Int) -> Double { k == 0 ? (1 / Double(n)).squareRoot() : (2 / Double(n)).squareRoot() }
        for u in 0..<h { for v in 0..<w { for ch in 0..<c {
            var s = 0.0
            for i in 0..<h { for j in 0..<w {
                s += alpha(u, h) * cos(Double.pi * Double(2 * i + 1) * Double(u) / Double(2 * h))
                    * alpha(v, w) * cos(Double.pi * Double(2 * j + 1) * Double(v) / Double(2 * w))
                    * Double(x.data[(i * w + j) * c + ch])
            } }
            XCTAssertEqual(Double(f.data[(u * w + v) * c + ch]), s, accuracy: 1e-5)
        } } }
    }

    func testHartleyIsTheTwoDimensionalCasKernelAndSelfInverse() {
        for (h, w) in [(4, 6), (5, 7), (3, 8)] {
            let c = 2
            let x = randomMaps(h * w * c, seed: 11)
            let f = Tensor(zeros: x.shape), g = Tensor(zeros: x.shape)
            let t = SpectralTransform(kind: .fft, h: h, w: w)
            t.forward(x, into: f, channels: c)
            for u in 0..<h { for v in 0..<w { for ch in 0..<c {
                var s = 0.0
                for i in 0..<h { for j in 0..<w {
                    let th = 2 * Double.pi * (Double(u * i) / Double(h) + Double(v * j) / Double(w))
                    s += (cos(th) + sin(th)) * Double(x.data[(i * w + j) * c + ch])
                } }
                XCTAssertEqual(Double(f.data[(u * w + v) * c + ch]), s / Double(h * w).squareRoot(), accuracy: 1e-5, "\(h)×\(w)")
            } } }
            t.forward(f, into: g, channels: c)
            for (a, b) in zip(x.array, g.array) { XCTAssertEqual(a, b, accuracy: 1e-5) }
        }
    }

    func testHaarUsesMallatLayoutAndLevelsWhileBothSidesStayEven() {
        XCTAssertEqual(SpectralTransform(kind: .haar, h: 32, w: 32).levels, 5)
        XCTAssertEqual(SpectralTransform(kind: .haar, h: 16, w: 16).levels, 4)
        XCTAssertEqual(SpectralTransform(kind: .haar, h: 4, w: 6).levels, 1)
        XCTAssertEqual(SpectralTransform(kind: .haar, h: 4, w: 8).levels, 2)
        XCTAssertEqual(SpectralTransform(kind: .haar, h: 37, w: 37).levels, 0)
        // A constant map: all energy in the coarsest (top-left) approximation block.
        let (h, w) = (4, 8)
        let x = Tensor(shape: [h * w], repeating: 1)
        let f = Tensor(zeros: [h * w])
        SpectralTransform(kind: .haar, h: h, w: w).forward(x, into: f, channels: 1)
        // Two levels (4×8 → 2×4 → 1×2): the 1×2 approximation holds 4 each.
        XCTAssertEqual(f.data[0], 4, accuracy: 1e-5)
        XCTAssertEqual(f.data[1], 4, accuracy: 1e-5)
        for k in 2..<(h * w) { XCTAssertEqual(f.data[k], 0, accuracy: 1e-6) }
        // One level on a 2×2 map: [[a+b+c+d, a−b+c−d], [a+b−c−d, a−b−c+d]] / 2.
        let y = Tensor(shape: [4], values: [1, 2, 3, 4])
        let g = Tensor(zeros: [4])
        SpectralTransform(kind: .haar, h: 2, w: 2).forward(y, into: g, channels: 1)
        for (a, b) in zip(g.array, [Float(5), -1, -2, 0]) { XCTAssertEqual(a, b, accuracy: 1e-6) }
    }

    func testFrequencyCoordinatePerTransform() {
        let dct = SpectralTransform(kind: .dct, h: 8, w: 8)
        let fft = SpectralTransform(kind: .fft, h: 8, w: 8)
        XCTAssertEqual(dct.frequency(6, 8), 0.75)
        XCTAssertEqual(fft.frequency(6, 8), 0.5)
        XCTAssertEqual(fft.frequency(4, 8), 1.0)
        XCTAssertEqual(SpectralTransform(kind: .haar, h: 8, w: 8).frequency(3, 8), 0.375)
    }

    func testStridedBatchesTransformOnlyTheirOwnRows() {
        // Maps laid out with a gap between images (as patch tokens after prefix tokens).
        let (h, w, c, gap) = (4, 6, 3, 5)
        let n = h * w * c
        let src = randomMaps(2 * (n + gap), seed: 5)
        let dst = Tensor(shape: [2 * (n + gap)], repeating: 42)
        let t = SpectralTransform(kind: .dct, h: h, w: w)
        t.forward(src: src.data + gap, srcStride: n + gap, dst: dst.data + gap, dstStride: n + gap, batch: 2, channels: c)
        for b in 0..<2 {
            for k in 0..<gap { XCTAssertEqual(dst.data[b * (n + gap) + k], 42) }
            let one = Tensor(shape: [n], values: Array(src.array[(b * (n + gap) + gap)..<(b * (n + gap) + gap + n)]))
            let ref = Tensor(zeros: [n])
            t.forward(one, into: ref, channels: c)
            for k in 0..<n { XCTAssertEqual(dst.data[b * (n + gap) + gap + k], ref.data[k]) }
        }
    }
}
