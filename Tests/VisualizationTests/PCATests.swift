import XCTest
import Numerics
import Visualization

final class PCATests: XCTestCase {
    /// X = μ + A Z + ε with A (C×3) of orthogonal columns with separated scales: the
    /// recovered components span A's columns and come out in order of variance.
    private func plantedSubspace(C: Int, N: Int, seed: UInt64) -> (features: Tensor, basis: [[Double]]) {
        var rng = RandomGenerator(seed: seed)
        // Orthonormal basis by Gram–Schmidt of random vectors.
        var basis: [[Double]] = []
        for _ in 0..<3 {
            var v = (0..<C).map { _ in Double(rng.normal()) }
            for b in basis { let d = zip(v, b).reduce(0) { $0 + $1.0 * $1.1 }; v = zip(v, b).map { $0 - d * $1 } }
            let n = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
            basis.append(v.map { $0 / n })
        }
        let scales = [10.0, 6.0, 3.0]
        let x = Tensor(zeros: [C, N])
        for i in 0..<N {
            let z = (0..<3).map { _ in Double(rng.normal()) }
            for c in 0..<C {
                var v = 0.5 + 0.01 * Double(c) + 0.01 * Double(rng.normal())
                for k in 0..<3 { v += scales[k] * z[k] * basis[k][c] }
                x.data[c * N + i] = Float(v)
            }
        }
        return (x, basis)
    }

    private func checkRecovers(C: Int, N: Int) {
        let (x, basis) = plantedSubspace(C: C, N: N, seed: UInt64(C * 1000 + N))
        let pca = PCA.fit(x, components: 3)
        XCTAssertEqual(pca.components.count, 3)
        for (k, v) in pca.components.enumerated() {
            let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
            XCTAssertEqual(norm, 1, accuracy: 1e-6)
            // Length of v's projection onto span(basis): 1 when v lies in the planted subspace.
            let inSpan = basis.reduce(0) { acc, b in let d = zip(v, b).reduce(0) { $0 + $1.0 * $1.1 }; return acc + d * d }
            XCTAssertEqual(inSpan, 1, accuracy: 1e-3, "component \(k) leaves the planted subspace (C=\(C), N=\(N))")
            // Ordered by variance: component k aligns with basis k (scales 10, 6, 3 are well separated).
            let align = abs(zip(v, basis[k]).reduce(0) { $0 + $1.0 * $1.1 })
            XCTAssertGreaterThan(align, 0.95, "component \(k) not aligned with planted direction \(k)")
        }
        XCTAssertGreaterThan(pca.variances[0], pca.variances[1])
        XCTAssertGreaterThan(pca.variances[1], pca.variances[2])
        // Projections: zero mean, variance equal to the eigenvalue.
        let p = pca.project(x)
        XCTAssertEqual(p.shape, [3, N])
        for k in 0..<3 {
            let row = (0..<N).map { Double(p.data[k * N + $0]) }
            let mean = row.reduce(0, +) / Double(N)
            let varr = row.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(N)
            XCTAssertEqual(mean, 0, accuracy: 1e-3 * pca.variances[0].squareRoot())
            XCTAssertEqual(varr, pca.variances[k], accuracy: 1e-3 * pca.variances[k])
        }
    }

    func testRecoversPlantedSubspaceFromCovariance() { checkRecovers(C: 96, N: 400) }    // N ≥ C: C×C covariance
    func testRecoversPlantedSubspaceFromGram() { checkRecovers(C: 200, N: 64) }          // N < C: Gram matrix
    func testRecoversPlantedSubspaceSmallChannelCount() { checkRecovers(C: 8, N: 50) }

    func testDiagonalisesSymmetricMatrix() {
        let a: [Double] = [4, 1, 2, 1, 3, 0, 2, 0, 5]
        let (vals, vecs) = SymmetricEigen.all(of: a, n: 3)
        XCTAssertEqual(vals.reduce(0, +), 12, accuracy: 1e-10)   // trace
        XCTAssertTrue(vals[0] >= vals[1] && vals[1] >= vals[2])
        for (l, v) in zip(vals, vecs) {
            for i in 0..<3 {
                let av = (0..<3).reduce(0.0) { $0 + a[i * 3 + $1] * v[$1] }
                XCTAssertEqual(av, l * v[i], accuracy: 1e-10)
            }
        }
    }

    func testTopEigenpairsOfAKnownDecomposition() {
        // A = Q diag(d) Qᵀ with Q orthonormal (Gram–Schmidt of random vectors) and a known
        // spectrum d: the top 3 are d's largest, with Q's columns as vectors (up to sign).
        let n = 60
        var rng = RandomGenerator(seed: 7)
        var q: [[Double]] = []
        for _ in 0..<n {
            var v = (0..<n).map { _ in Double(rng.normal()) }
            for _ in 0..<2 { for b in q { let d = zip(v, b).reduce(0) { $0 + $1.0 * $1.1 }; v = zip(v, b).map { $0 - d * $1 } } }
            let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
            q.append(v.map { $0 / norm })
        }
        let d = (0..<n).map { Double(($0 * 37) % n) + 0.5 }   // a permutation of 0.5 … 59.5
        var a = [Double](repeating: 0, count: n * n)
        for i in 0..<n { for j in 0..<n { a[i * n + j] = (0..<n).reduce(0.0) { $0 + q[$1][i] * d[$1] * q[$1][j] } } }
        let (top, vecs) = SymmetricEigen.top(3, of: a, n: n)
        XCTAssertEqual(top.count, 3)
        for k in 0..<3 {
            XCTAssertEqual(top[k], Double(n - 1 - k) + 0.5, accuracy: 1e-9)
            let planted = q[d.firstIndex(of: top[k].rounded(.down) + 0.5)!]
            XCTAssertEqual(abs(zip(vecs[k], planted).reduce(0) { $0 + $1.0 * $1.1 }), 1, accuracy: 1e-9)
        }
        // A matrix with a NaN gives NaN eigenpairs, not a trap.
        var bad = a; bad[5] = .nan
        XCTAssertTrue(SymmetricEigen.top(3, of: bad, n: n).values.allSatisfy { $0.isNaN })
    }

    func testEveryComponentsLargestLoadingIsPositive() {
        // LAPACK's signs are arbitrary: over 8 fits × 3 components an unfixed sign shows.
        for seed in UInt64(11)...18 {
            let (x, _) = plantedSubspace(C: 40, N: 100, seed: seed)
            for v in PCA.fit(x, components: 3).components {
                let big = v.indices.max { abs(v[$0]) < abs(v[$1]) }!
                XCTAssertGreaterThan(v[big], 0, "seed \(seed)")
            }
        }
    }

    func testPCARGBMapIsNotConstantAndHasFeatureGridSize() {
        // Features with spatial structure: three smooth patterns mixed into 32 channels.
        let C = 32, h = 12, w = 20
        let x = Tensor(zeros: [C, h, w])
        var rng = RandomGenerator(seed: 3)
        let mix = (0..<(3 * C)).map { _ in rng.normal() }
        for y in 0..<h {
            for xx in 0..<w {
                let p: [Float] = [Float(xx) / Float(w), Float(y) / Float(h), sin(Float(xx + y) * 0.7)]
                for c in 0..<C { x[c, y, xx] = p[0] * mix[c] + p[1] * mix[C + c] + p[2] * mix[2 * C + c] }
            }
        }
        let img = PCA.rgb(x)
        XCTAssertEqual(img.width, w)
        XCTAssertEqual(img.height, h)
        for ch in 0..<3 {
            let values = Set(Swift.stride(from: ch, to: img.pixels.count, by: 3).map { img.pixels[$0] })
            XCTAssertGreaterThan(values.count, 8, "channel \(ch) of the PCA map is (nearly) constant")
            XCTAssertEqual(values.min(), 0)
            XCTAssertEqual(values.max(), 255)
        }
    }
}
