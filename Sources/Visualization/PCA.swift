import Foundation
import ImageIO
import Numerics

/// Principal component analysis of a feature map, for the
/// "first three components as RGB" pictures of `visualize features`.
///
/// Features `X ∈ R^{C×N}` (C channels, N = h·w positions; `[C, h, w]` row-major is
/// already this layout). With the channel means `μ` and `X̄ = X − μ1ᵀ`:
/// * if `N ≥ C`: the covariance `Σ = X̄ X̄ᵀ / N` (C×C, one BLAS product) and its top-k
///   eigenvectors `v_1…v_k` are the components;
/// * if `N < C`: the Gram matrix `G = X̄ᵀ X̄ / N` (N×N) has the same non-zero eigenvalues,
///   and `v_i = X̄ u_i / ‖X̄ u_i‖` for its eigenvectors `u_i` — the smaller problem.
/// The top-k eigenpairs of the symmetric positive semi-definite matrix come from LAPACK
/// (`SymmetricEigen`, in Double). Each component's sign is fixed so that its
/// largest-magnitude entry is positive: LAPACK's signs are arbitrary, the pictures must not be.
/// Projections are `P = Vᵀ X̄ ∈ R^{k×N}`.
public struct PCA {
    /// Channel means, `C`.
    public let mean: [Float]
    /// Components, `k × C`, orthonormal rows.
    public let components: [[Double]]
    /// Eigenvalues (variances along the components), descending.
    public let variances: [Double]

    /// Fits `k` components to `features` of shape `[C, h, w]` or `[C, N]`.
    public static func fit(_ features: Tensor, components k: Int = 3) -> PCA {
        precondition(features.rank >= 2, "PCA.fit: features must be [C, ...], got \(features.shape)")
        let C = features.shape[0]
        let N = features.count / Swift.max(C, 1)
        precondition(C >= 1 && N >= 1, "PCA.fit: empty features \(features.shape)")
        // Centre.
        var mean = [Float](repeating: 0, count: C)
        let xc = Tensor(zeros: [C, N])
        let x = features.data, y = xc.data
        for c in 0..<C {
            var s = 0.0
            for i in 0..<N { s += Double(x[c * N + i]) }
            let m = Float(s / Double(N))
            mean[c] = m
            for i in 0..<N { y[c * N + i] = x[c * N + i] - m }
        }
        let useGram = N < C
        let n = useGram ? N : C
        let kk = Swift.min(k, n)
        let a = Tensor(zeros: [n, n])
        if useGram {
            BLAS.gemm(transposeA: true, transposeB: false, m: N, n: N, k: C, alpha: 1 / Float(N),
                      a: y, lda: N, b: y, ldb: N, beta: 0, c: a.data, ldc: N)
        } else {
            BLAS.gemm(transposeA: false, transposeB: true, m: C, n: C, k: N, alpha: 1 / Float(N),
                      a: y, lda: N, b: y, ldb: N, beta: 0, c: a.data, ldc: C)
        }
        let (values, vectors) = SymmetricEigen.top(kk, of: (0..<(n * n)).map { Double(a.data[$0]) }, n: n)
        var comps: [[Double]] = []
        for j in 0..<kk {
            var v: [Double]
            if useGram {
                // v = X̄ u / ‖X̄ u‖
                let u = vectors[j]
                v = [Double](repeating: 0, count: C)
                for c in 0..<C {
                    var s = 0.0
                    for i in 0..<N { s += Double(y[c * N + i]) * u[i] }
                    v[c] = s
                }
                let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
                if norm > 0 { v = v.map { $0 / norm } }
            } else {
                v = vectors[j]
            }
            if let big = v.indices.max(by: { abs(v[$0]) < abs(v[$1]) }), v[big] < 0 { v = v.map { -$0 } }
            comps.append(v)
        }
        return PCA(mean: mean, components: comps, variances: Array(values.prefix(kk)))
    }

    /// Projections onto the components: `[k, rest…]` for features `[C, rest…]`.
    public func project(_ features: Tensor) -> Tensor {
        let C = mean.count
        precondition(features.rank >= 2 && features.shape[0] == C, "PCA.project: features \(features.shape), fitted C = \(C)")
        let N = features.count / C
        let k = components.count
        let out = Tensor(zeros: [k] + Array(features.shape.dropFirst()))
        let x = features.data, o = out.data
        let w = Tensor(zeros: [k, C])
        for j in 0..<k { for c in 0..<C { w.data[j * C + c] = Float(components[j][c]) } }
        // P = W (X − μ): subtract the mean through the bias term  −W μ.
        BLAS.gemm(transposeA: false, transposeB: false, m: k, n: N, k: C, alpha: 1,
                  a: w.data, lda: C, b: x, ldb: N, beta: 0, c: o, ldc: N)
        for j in 0..<k {
            var b = 0.0
            for c in 0..<C { b += components[j][c] * Double(mean[c]) }
            let fb = Float(b)
            for i in 0..<N { o[j * N + i] -= fb }
        }
        return out
    }

    /// The first three components of `features` `[C, h, w]` as an RGB picture (w × h):
    /// each component is mapped to [0, 255] between its `clip` and `1 − clip` quantiles
    /// (robust min-max). With fewer than three components the rest are 0.
    public static func rgb(_ features: Tensor, clip: Double = 0.01) -> Canvas {
        precondition(features.rank == 3, "PCA.rgb: features must be [C, h, w], got \(features.shape)")
        let h = features.shape[1], w = features.shape[2]
        let p = fit(features, components: 3).project(features)
        let k = p.shape[0]
        var canvas = Canvas(width: w, height: h, background: .black)
        let N = h * w
        for j in 0..<k {
            let vals = Array(UnsafeBufferPointer(start: p.data + j * N, count: N))
            let (lo, hi) = quantileRange(vals, clip: clip)
            let span = hi - lo
            for i in 0..<N {
                let t = span > 0 ? (Double(vals[i]) - lo) / span : 0.5
                canvas.pixels[3 * i + j] = UInt8(Swift.min(255, Swift.max(0, (t * 255).rounded())))
            }
        }
        return canvas
    }

    /// The `clip` and `1 − clip` quantiles of `values` (nearest rank); the plain min and max
    /// when they coincide.
    static func quantileRange(_ values: [Float], clip: Double) -> (Double, Double) {
        let s = values.filter { $0.isFinite }.sorted()
        guard let first = s.first, let last = s.last else { return (0, 0) }
        let i0 = Swift.min(s.count - 1, Int(Double(s.count - 1) * clip))
        let i1 = Swift.max(0, Int(Double(s.count - 1) * (1 - clip)))
        let lo = Double(s[i0]), hi = Double(s[i1])
        return hi > lo ? (lo, hi) : (Double(first), Double(last))
    }
}
