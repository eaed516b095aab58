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
/// The top-k eigenpairs of the symmetric positive semi-definite matrix are found in
/// Double by orthogonal (subspace) iteration (the products `A·V` by sgemm on the float matrix) on `p = min(n, k + 4)` vectors with a
/// Rayleigh–Ritz step (`H = Vᵀ A V`, diagonalised by cyclic Jacobi) each sweep, until the
/// residuals `‖A v − λ v‖` fall below `1e-6·λ_1` or 1000 sweeps pass. Each component's
/// sign is fixed so that its largest-magnitude entry is positive (deterministic output).
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
        let (values, vectors): ([Double], [[Double]])
        if n <= 48 {
            (values, vectors) = SymmetricEigen.top(kk, of: (0..<(n * n)).map { Double(a.data[$0]) }, n: n)
        } else {
            // A·V through sgemm on the float matrix (V as p rows of n: AV = V·A, A symmetric).
            (values, vectors) = SymmetricEigen.top(kk, n: n) { V in
                let p = V.count
                let v = Tensor(zeros: [p, n]), av = Tensor(zeros: [p, n])
                for j in 0..<p { for t in 0..<n { v.data[j * n + t] = Float(V[j][t]) } }
                BLAS.gemm(transposeA: false, transposeB: false, m: p, n: n, k: n, alpha: 1,
                          a: v.data, lda: n, b: a.data, ldb: n, beta: 0, c: av.data, ldc: n)
                return (0..<p).map { j in (0..<n).map { Double(av.data[j * n + $0]) } }
            }
        }
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

/// Eigenpairs of real symmetric matrices (row-major `[Double]`, n × n).
public enum SymmetricEigen {
    /// All eigenpairs of a small symmetric matrix by cyclic Jacobi rotations, eigenvalues
    /// descending; `vectors[j]` is the unit eigenvector of `values[j]`.
    public static func jacobi(_ matrix: [Double], n: Int) -> (values: [Double], vectors: [[Double]]) {
        precondition(matrix.count == n * n, "jacobi: \(matrix.count) entries for n = \(n)")
        var a = matrix
        var v = [Double](repeating: 0, count: n * n)
        for i in 0..<n { v[i * n + i] = 1 }
        for _ in 0..<100 {
            var off = 0.0, diag = 0.0
            for i in 0..<n {
                diag += a[i * n + i] * a[i * n + i]
                for j in (i + 1)..<Swift.max(i + 1, n) { off += a[i * n + j] * a[i * n + j] }
            }
            if off <= 1e-30 * Swift.max(diag, 1e-300) { break }
            for p in 0..<n {
                for q in (p + 1)..<Swift.max(p + 1, n) {
                    let apq = a[p * n + q]
                    if abs(apq) < 1e-300 { continue }
                    let theta = (a[q * n + q] - a[p * n + p]) / (2 * apq)
                    let t = (theta >= 0 ? 1.0 : -1.0) / (abs(theta) + (theta * theta + 1).squareRoot())
                    let c = 1 / (t * t + 1).squareRoot(), s = t * c
                    for k in 0..<n {  // A ← A J (columns p, q)
                        let akp = a[k * n + p], akq = a[k * n + q]
                        a[k * n + p] = c * akp - s * akq
                        a[k * n + q] = s * akp + c * akq
                    }
                    for k in 0..<n {  // A ← Jᵀ A (rows p, q)
                        let apk = a[p * n + k], aqk = a[q * n + k]
                        a[p * n + k] = c * apk - s * aqk
                        a[q * n + k] = s * apk + c * aqk
                    }
                    for k in 0..<n {  // V ← V J
                        let vkp = v[k * n + p], vkq = v[k * n + q]
                        v[k * n + p] = c * vkp - s * vkq
                        v[k * n + q] = s * vkp + c * vkq
                    }
                }
            }
        }
        let order = (0..<n).sorted { a[$0 * n + $0] > a[$1 * n + $1] }
        return (order.map { a[$0 * n + $0] }, order.map { j in (0..<n).map { v[$0 * n + j] } })
    }

    /// The `k` largest eigenpairs of a symmetric positive semi-definite matrix by orthogonal
    /// iteration with Rayleigh–Ritz (see `PCA`); small matrices go straight to `jacobi`.
    public static func top(_ k: Int, of matrix: [Double], n: Int) -> (values: [Double], vectors: [[Double]]) {
        precondition(k >= 1 && k <= n && matrix.count == n * n, "SymmetricEigen.top: k = \(k), n = \(n)")
        if n <= 48 {
            let (vals, vecs) = jacobi(matrix, n: n)
            return (Array(vals.prefix(k)), Array(vecs.prefix(k)))
        }
        return top(k, n: n) { V in V.map { multiply(matrix, n: n, $0) } }
    }

    /// Orthogonal iteration given the product `A·v` for a set of vectors (`multiply(V)[j] = A·V[j]`).
    public static func top(_ k: Int, n: Int, multiply: ([[Double]]) -> [[Double]]) -> (values: [Double], vectors: [[Double]]) {
        precondition(k >= 1 && k <= n, "SymmetricEigen.top: k = \(k), n = \(n)")
        let p = Swift.min(n, k + 4)
        var rng = RandomGenerator(seed: 0x5ca1ab1e)
        // V: p columns stored as p rows of length n.
        var V = (0..<p).map { _ in (0..<n).map { _ in Double(rng.normal()) } }
        orthonormalise(&V)
        var AV = V
        var values = [Double](repeating: 0, count: p)
        for _ in 0..<1000 {
            AV = multiply(V)
            // Rayleigh–Ritz: H = Vᵀ A V, rotate V by H's eigenvectors.
            var H = [Double](repeating: 0, count: p * p)
            for i in 0..<p { for j in 0..<p { H[i * p + j] = dot(V[i], AV[j]) } }
            for i in 0..<p { for j in (i + 1)..<Swift.max(i + 1, p) { let m = (H[i * p + j] + H[j * p + i]) / 2; H[i * p + j] = m; H[j * p + i] = m } }
            let (vals, U) = jacobi(H, n: p)
            values = vals
            var newV = V, newAV = AV
            for j in 0..<p {
                var v = [Double](repeating: 0, count: n), av = [Double](repeating: 0, count: n)
                for i in 0..<p {
                    let u = U[j][i]
                    for t in 0..<n { v[t] += u * V[i][t]; av[t] += u * AV[i][t] }
                }
                newV[j] = v; newAV[j] = av
            }
            V = newV; AV = newAV
            // Converged when the top-k residuals are small.
            let scale = Swift.max(abs(values[0]), 1e-300)
            var worst = 0.0
            for j in 0..<k {
                var r = 0.0
                for t in 0..<n { let d = AV[j][t] - values[j] * V[j][t]; r += d * d }
                worst = Swift.max(worst, r.squareRoot())
            }
            if worst <= 1e-6 * scale { break }
            // Next subspace: A V, orthonormalised.
            V = AV
            orthonormalise(&V)
        }
        return (Array(values.prefix(k)), Array(V.prefix(k)))
    }

    private static func dot(_ a: [Double], _ b: [Double]) -> Double {
        var s = 0.0
        for i in a.indices { s += a[i] * b[i] }
        return s
    }

    private static func multiply(_ m: [Double], n: Int, _ x: [Double]) -> [Double] {
        var y = [Double](repeating: 0, count: n)
        m.withUnsafeBufferPointer { mp in
            x.withUnsafeBufferPointer { xp in
                for i in 0..<n {
                    var s = 0.0
                    let row = mp.baseAddress! + i * n
                    for j in 0..<n { s += row[j] * xp[j] }
                    y[i] = s
                }
            }
        }
        return y
    }

    /// Modified Gram–Schmidt (twice, for stability); a vector that vanishes is replaced by a
    /// unit vector orthogonal to the others.
    private static func orthonormalise(_ V: inout [[Double]]) {
        let n = V.first?.count ?? 0
        for _ in 0..<2 {
            for j in V.indices {
                for i in 0..<j {
                    let d = dot(V[i], V[j])
                    for t in 0..<n { V[j][t] -= d * V[i][t] }
                }
                var norm = dot(V[j], V[j]).squareRoot()
                if norm < 1e-280 {
                    V[j] = (0..<n).map { $0 == j % n ? 1 : 0 }
                    for i in 0..<j { let d = dot(V[i], V[j]); for t in 0..<n { V[j][t] -= d * V[i][t] } }
                    norm = dot(V[j], V[j]).squareRoot()
                }
                for t in 0..<n { V[j][t] /= norm }
            }
        }
    }
}
