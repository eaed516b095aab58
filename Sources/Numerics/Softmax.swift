import Foundation

/// Softmax over the last dimension, in place, numerically stable (exp by `fastExp`):
///
///     y_j = exp(x_j − max_k x_k) / Σ_k exp(x_k − max_k x_k)
///
/// and its backward (the Jacobian-vector product), for rows × cols buffers:
///
///     dx_j += y_j · (dy_j − Σ_k dy_k y_k)
extension Kernels {
    /// Replaces every row of the rows × cols matrix `x` by its softmax.
    public static func softmaxRows(_ x: UnsafeMutablePointer<Float>, rows: Int, cols: Int) {
        Parallel.forEach(rows, grain: Swift.max(1, elementGrain / Swift.max(cols, 1))) { r in
            for i in r { softmaxRow(x + i * cols, cols) }
        }
    }

    /// Softmax of one row of `n` elements, in place (single thread; for callers that
    /// parallelise themselves). 8-lane max, exp and sum.
    @inline(__always)
    public static func softmaxRow(_ row: UnsafeMutablePointer<Float>, _ n: Int) {
        var mv = SIMD8<Float>(repeating: -.infinity)
        var j = 0
        while j + 8 <= n { let v = row.load8(j); mv = mv.replacing(with: v, where: v .> mv); j += 8 }
        var m = mv.max()
        while j < n { m = Swift.max(m, row[j]); j += 1 }
        var sv = SIMD8<Float>()
        let mb = SIMD8<Float>(repeating: m)
        j = 0
        while j + 8 <= n {
            let e = fastExp(row.load8(j) - mb)
            row.store8(e, j)
            sv += e
            j += 8
        }
        var s = sv.sum()
        while j < n {
            let e = fastExp(row[j] - m)
            row[j] = e
            s += e
            j += 1
        }
        let inv = 1 / s
        for j in 0..<n { row[j] *= inv }
    }

    /// `dx += y ⊙ (dy − rowsum(dy ⊙ y))` for rows × cols matrices; `y` is the softmax
    /// output. `dx` must not alias `dy` (use `softmaxRowBackwardInPlace` to overwrite).
    public static func softmaxRowsBackward(dInput dx: UnsafeMutablePointer<Float>, dOutput dy: UnsafePointer<Float>,
                                           output y: UnsafePointer<Float>, rows: Int, cols: Int) {
        Parallel.forEach(rows, grain: Swift.max(1, elementGrain / Swift.max(cols, 1))) { r in
            for i in r {
                let o = i * cols
                var dot: Float = 0
                for j in 0..<cols { dot += dy[o + j] * y[o + j] }
                for j in 0..<cols { dx[o + j] += y[o + j] * (dy[o + j] - dot) }
            }
        }
    }

    /// One row: `g = y ⊙ (g − Σ g ⊙ y) · scale`, overwriting the incoming gradient `g`
    /// (what attention uses: the gradient of the scores replaces that of the probabilities).
    @inline(__always)
    public static func softmaxRowBackwardInPlace(_ g: UnsafeMutablePointer<Float>, output y: UnsafePointer<Float>,
                                                 _ n: Int, scale: Float = 1) {
        var dv = SIMD8<Float>()
        var j = 0
        while j + 8 <= n { dv += g.load8(j) * y.load8(j); j += 8 }
        var dot = dv.sum()
        while j < n { dot += g[j] * y[j]; j += 1 }
        for j in 0..<n { g[j] = scale * y[j] * (g[j] - dot) }
    }

    /// Softmax over the last dimension of `x`, in place.
    public static func softmax(_ x: Tensor) {
        let cols = x.shape.last ?? 1
        softmaxRows(x.data, rows: x.count / Swift.max(cols, 1), cols: cols)
    }
}
