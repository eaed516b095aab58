/// Element-wise kernels over flat buffers of `n` elements:
///
///     add:    c = a + b
///     scale:  x = s · x
///     axpy:   y = y + α · x
///     mul:    c = a ⊙ b
///     scaledResidual:  y[i, c] = x[i, c] + γ[c] · r[i, c]   (a LayerScale'd residual branch)
///     scaleChannels:   y[i, c] = γ[c] · x[i, c]
///     copy:   y = x          zero:   x = 0
///
/// Outputs may alias inputs (every element is read before it is written, index by index),
/// except `copy`'s, which must not overlap its source.
extension Kernels {
    /// `c[i] = a[i] + b[i]`.
    public static func add(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                           into c: UnsafeMutablePointer<Float>, count n: Int) {
        Parallel.forEach(n, grain: elementGrain) { r in
            for i in r { c[i] = a[i] + b[i] }
        }
    }

    /// `x[i] *= s`.
    public static func scale(_ x: UnsafeMutablePointer<Float>, by s: Float, count n: Int) {
        Parallel.forEach(n, grain: elementGrain) { r in
            for i in r { x[i] *= s }
        }
    }

    /// `y[i] += alpha · x[i]`.
    public static func axpy(_ alpha: Float, _ x: UnsafePointer<Float>,
                            _ y: UnsafeMutablePointer<Float>, count n: Int) {
        Parallel.forEach(n, grain: elementGrain) { r in
            for i in r { y[i] += alpha * x[i] }
        }
    }

    /// `c[i] = a[i] · b[i]`.
    public static func mul(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                           into c: UnsafeMutablePointer<Float>, count n: Int) {
        Parallel.forEach(n, grain: elementGrain) { r in
            for i in r { c[i] = a[i] * b[i] }
        }
    }

    /// `y[i, c] = x[i, c] + gamma[c] · r[i, c]` over a rows × channels matrix (the residual
    /// add of a LayerScale'd branch in one pass; `y` may alias `x` or `r`).
    public static func scaledResidual(_ x: UnsafePointer<Float>, _ r: UnsafePointer<Float>, gamma: UnsafePointer<Float>,
                                      into y: UnsafeMutablePointer<Float>, rows: Int, channels C: Int) {
        Parallel.forEach(rows, grain: Swift.max(1, elementGrain / Swift.max(C, 1))) { range in
            for i in range {
                let xi = x + i * C, ri = r + i * C, yi = y + i * C
                for c in 0..<C { yi[c] = xi[c] + gamma[c] * ri[c] }
            }
        }
    }

    /// `y[i, c] = gamma[c] · x[i, c]` over a rows × channels matrix (`y` may alias `x`).
    public static func scaleChannels(_ x: UnsafePointer<Float>, gamma: UnsafePointer<Float>,
                                     into y: UnsafeMutablePointer<Float>, rows: Int, channels C: Int) {
        Parallel.forEach(rows, grain: Swift.max(1, elementGrain / Swift.max(C, 1))) { range in
            for i in range {
                let xi = x + i * C, yi = y + i * C
                for c in 0..<C { yi[c] = gamma[c] * xi[c] }
            }
        }
    }

    /// `y[i] = x[i]` (`update(from:)` over the workers). Activation-sized copies and zero
    /// fills between two regions (a block's residual gradient, the flat gradient buffer) were
    /// ≈ 0.06 s of the ≈ 0.09 s of serial work in the ViT-L step (scaling model, T = 64).
    public static func copy(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count n: Int) {
        Parallel.forEach(n, grain: elementGrain) { r in
            (y + r.lowerBound).update(from: x + r.lowerBound, count: r.count)
        }
    }

    /// `x[i] = 0` (`update(repeating:)` over the workers; see `copy`).
    public static func zero(_ x: UnsafeMutablePointer<Float>, count n: Int) {
        Parallel.forEach(n, grain: elementGrain) { r in
            (x + r.lowerBound).update(repeating: 0, count: r.count)
        }
    }

    // MARK: Tensor forms

    /// `c = a + b` (same element counts).
    public static func add(_ a: Tensor, _ b: Tensor, into c: Tensor) {
        precondition(a.count == b.count && a.count == c.count, "add: \(a.shape) + \(b.shape) into \(c.shape)")
        add(a.data, b.data, into: c.data, count: c.count)
    }

    /// `x = s · x`.
    public static func scale(_ x: Tensor, by s: Float) { scale(x.data, by: s, count: x.count) }

    /// `y += alpha · x` (same element counts).
    public static func axpy(_ alpha: Float, _ x: Tensor, _ y: Tensor) {
        precondition(x.count == y.count, "axpy: \(x.shape) into \(y.shape)")
        axpy(alpha, x.data, y.data, count: y.count)
    }

    /// `y = x` (same element counts; `Tensor.copy(from:)` over the workers).
    public static func copy(_ x: Tensor, into y: Tensor) {
        precondition(x.count == y.count, "copy: \(x.shape) into \(y.shape)")
        copy(x.data, into: y.data, count: y.count)
    }

    /// `x = 0` (`Tensor.zero()` over the workers).
    public static func zero(_ x: Tensor) { zero(x.data, count: x.count) }

    /// `c = a ⊙ b` (same element counts).
    public static func mul(_ a: Tensor, _ b: Tensor, into c: Tensor) {
        precondition(a.count == b.count && a.count == c.count, "mul: \(a.shape) ⊙ \(b.shape) into \(c.shape)")
        mul(a.data, b.data, into: c.data, count: c.count)
    }
}
