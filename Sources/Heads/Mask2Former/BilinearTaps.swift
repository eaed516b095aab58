import Numerics

/// The bilinear taps of a point set on an `[H, W]` grid, computed once and applied to any
/// number of maps of that size (`F.grid_sample(..., align_corners=False)` semantics, as
/// `BilinearTap`): for point p with corners c ∈ {00, 01, 10, 11},
///
///     sample(m)[p] = Σ_c w_pc · m[i_pc]             (forward, summed in the order 00, 01, 10, 11)
///     dm[i_pc]    += w_pc · g[p]                    (backward, the adjoint)
///
/// with `i_pc`, `w_pc` the flat index and weight of `BilinearTap`. A corner outside the map
/// stores index 0 and weight 0, so the loops are branch-free; they read `m[0] · 0`, which
/// leaves a finite sum unchanged (results equal `BilinearTap.sample` up to the sign of a zero).
///
/// All masks of an image share their matching points, and a mask's loss points serve its
/// forward and its backward, so the taps (floor, clamps, bounds, weights) are paid once per
/// point set instead of once per (mask, point). Storage: 32 bytes per point.
public struct BilinearTaps {
    /// One point's four corners: flat indices `y·W + x` and bilinear weights.
    @usableFromInline
    struct Corners {
        @usableFromInline var index: SIMD4<Int32>
        @usableFromInline var weight: SIMD4<Float>
    }

    /// Number of points.
    public let count: Int
    public let width: Int, height: Int
    @usableFromInline let corners: [Corners]

    /// The taps of `count` points (x, y) ∈ [0, 1]² stored as pairs at `points`.
    public init(points: UnsafePointer<Float>, count: Int, width: Int, height: Int) {
        precondition(width * height <= Int(Int32.max), "BilinearTaps: map \(height)×\(width) too large")
        self.count = count
        self.width = width
        self.height = height
        corners = [Corners](unsafeUninitializedCapacity: count) { buffer, initialized in
            guard count > 0, let c = buffer.baseAddress else { initialized = 0; return }
            Parallel.forEach(count, grain: 4096) { r in
                for j in r {
                    let t = BilinearTap(x: points[2 * j], y: points[2 * j + 1], width: width, height: height)
                    // An outside corner (index −1) reads map[0] with weight 0.
                    @inline(__always) func tap(_ i: Int, _ w: Float) -> (Int32, Float) { i >= 0 ? (Int32(i), w) : (0, 0) }
                    let (i0, w0) = tap(t.i00, t.w00), (i1, w1) = tap(t.i01, t.w01)
                    let (i2, w2) = tap(t.i10, t.w10), (i3, w3) = tap(t.i11, t.w11)
                    (c + j).initialize(to: Corners(index: SIMD4(i0, i1, i2, i3), weight: SIMD4(w0, w1, w2, w3)))
                }
            }
            initialized = count
        }
    }

    /// The taps of all points of `points` [..., P, 2] (flattened in order) on a `[height, width]` map.
    public init(points: Tensor, width: Int, height: Int) {
        precondition(points.rank >= 2 && points.shape[points.rank - 1] == 2, "BilinearTaps: points \(points.shape), expected [..., 2]")
        self.init(points: points.data, count: points.count / 2, width: width, height: height)
    }

    /// out[k] = sample of map `m` [H, W] at point `first + k`, k < n.
    @inlinable
    public func sample(_ m: UnsafePointer<Float>, points first: Int, _ n: Int, into out: UnsafeMutablePointer<Float>) {
        withCorners(first, n) { c in
            for k in 0..<n {
                let t = c[k]
                var s: Float = 0
                for i in 0..<4 { s += t.weight[i] * m[Int(t.index[i])] }
                out[k] = s
            }
        }
    }

    /// dm [H, W] += adjoint of `sample` applied to g[k] at point `first + k`, k < n.
    @inlinable
    public func scatter(_ g: UnsafePointer<Float>, points first: Int, _ n: Int, into dm: UnsafeMutablePointer<Float>) {
        withCorners(first, n) { c in
            for k in 0..<n {
                let t = c[k], gk = g[k]
                for i in 0..<4 { dm[Int(t.index[i])] += t.weight[i] * gk }
            }
        }
    }

    /// The corners of points `first ..< first + n`, checked against the set.
    @inlinable
    func withCorners(_ first: Int, _ n: Int, _ body: (UnsafePointer<Corners>) -> Void) {
        precondition(first >= 0 && first + n <= count, "BilinearTaps: points \(first)..<\(first + n) of \(count)")
        if n == 0 { return }
        corners.withUnsafeBufferPointer { body($0.baseAddress! + first) }
    }
}
