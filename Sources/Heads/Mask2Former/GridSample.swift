import Numerics

/// Bilinear sampling at normalised points with `F.grid_sample(..., mode="bilinear",
/// padding_mode="zeros", align_corners=False)` semantics, the primitive under both
/// multi-scale deformable attention and Mask2Former's `point_sample`.
///
/// A point `(x, y) ∈ [0, 1]²` (x along the width) of a map `[H, W]` is the grid value
/// `2·(x, y) − 1`, i.e. the pixel coordinates
///
///     px = x·W − ½,   py = y·H − ½
///     x0 = ⌊px⌋, y0 = ⌊py⌋, λx = px − x0, λy = py − y0
///     s = (1−λy)((1−λx) m[y0,x0] + λx m[y0,x0+1]) + λy((1−λx) m[y0+1,x0] + λx m[y0+1,x0+1])
///
/// where a corner outside `[0, H−1] × [0, W−1]` reads 0. Derivatives, with `m` as above:
///
///     ∂s/∂px = (1−λy)(m[y0,x0+1] − m[y0,x0]) + λy(m[y0+1,x0+1] − m[y0+1,x0]),   ∂s/∂x = W ∂s/∂px
///     ∂s/∂py = (1−λx)(m[y0+1,x0] − m[y0,x0]) + λx(m[y0+1,x0+1] − m[y0,x0+1]),   ∂s/∂y = H ∂s/∂py
///     ∂s/∂m[corner] = its bilinear weight
public struct BilinearTap {
    /// Flat indices `y·W + x` of the four corners (00, 01, 10, 11), −1 where outside.
    public var i00: Int, i01: Int, i10: Int, i11: Int
    /// The bilinear fractions.
    public var lx: Float, ly: Float

    @inline(__always)
    public init(x: Float, y: Float, width: Int, height: Int) {
        let px = x * Float(width) - 0.5, py = y * Float(height) - 0.5
        let fx = px.rounded(.down), fy = py.rounded(.down)
        lx = px - fx
        ly = py - fy
        // Far-out points (|px| huge) read nothing; clamp before converting to Int.
        let x0 = Int(Swift.max(Swift.min(fx, Float(width + 1)), -2))
        let y0 = Int(Swift.max(Swift.min(fy, Float(height + 1)), -2))
        let vx0 = x0 >= 0 && x0 < width, vx1 = x0 + 1 >= 0 && x0 + 1 < width
        let vy0 = y0 >= 0 && y0 < height, vy1 = y0 + 1 >= 0 && y0 + 1 < height
        i00 = vy0 && vx0 ? y0 * width + x0 : -1
        i01 = vy0 && vx1 ? y0 * width + x0 + 1 : -1
        i10 = vy1 && vx0 ? (y0 + 1) * width + x0 : -1
        i11 = vy1 && vx1 ? (y0 + 1) * width + x0 + 1 : -1
    }

    @inline(__always) public var w00: Float { (1 - lx) * (1 - ly) }
    @inline(__always) public var w01: Float { lx * (1 - ly) }
    @inline(__always) public var w10: Float { (1 - lx) * ly }
    @inline(__always) public var w11: Float { lx * ly }

    /// The sample of a single-channel map.
    @inline(__always)
    public func sample(_ m: UnsafePointer<Float>) -> Float {
        var s: Float = 0
        if i00 >= 0 { s += w00 * m[i00] }
        if i01 >= 0 { s += w01 * m[i01] }
        if i10 >= 0 { s += w10 * m[i10] }
        if i11 >= 0 { s += w11 * m[i11] }
        return s
    }

    /// dm[corner] += weight · g (the adjoint of `sample`).
    @inline(__always)
    public func scatter(_ g: Float, into dm: UnsafeMutablePointer<Float>) {
        if i00 >= 0 { dm[i00] += w00 * g }
        if i01 >= 0 { dm[i01] += w01 * g }
        if i10 >= 0 { dm[i10] += w10 * g }
        if i11 >= 0 { dm[i11] += w11 * g }
    }
}

/// Mask2Former's `point_sample` on single-channel maps:
///
///     out[n, p] = bilinear(maps[n], points[n, p])      maps [N, H, W], points [N, P, 2] (x, y) ∈ [0,1]
///
/// (`points` may have a leading dimension of 1, shared by all maps.) The backward scatters
/// into the maps; the points are constants (sampled without gradient, as the reference does).
/// Shared points have their taps (`BilinearTaps`) computed once for all maps; a caller that
/// samples the same points again (the backward of its forward) passes the taps themselves.
public enum PointSample {
    /// maps [N, H, W], points [N or 1, P, 2] → out [N, P] (written).
    public static func forward(maps: Tensor, points: Tensor, into out: Tensor) {
        let (n, h, w, p, shared) = check(maps, points)
        precondition(out.count == n * p, "PointSample: output \(out.shape) for \(n)×\(p) points")
        if shared {
            forward(maps: maps, taps: BilinearTaps(points: points, width: w, height: h), into: out)
            return
        }
        // One point set per map, used once: taps on the fly.
        let mp = maps.data, pp = points.data, op = out.data
        Parallel.forEach(n, grain: Swift.max(1, 4096 / Swift.max(p, 1))) { r in
            for i in r {
                let pts = pp + i * p * 2, m = mp + i * h * w
                for j in 0..<p {
                    op[i * p + j] = BilinearTap(x: pts[2 * j], y: pts[2 * j + 1], width: w, height: h).sample(m)
                }
            }
        }
    }

    /// dMaps [N, H, W] += adjoint of `forward` applied to dOut [N, P].
    public static func backward(dOut: Tensor, points: Tensor, dMaps: Tensor) {
        let (n, h, w, p, _) = check(dMaps, points)
        precondition(dOut.count == n * p, "PointSample: dOut \(dOut.shape) for \(n)×\(p) points")
        backward(dOut: dOut, taps: BilinearTaps(points: points, width: w, height: h), dMaps: dMaps)
    }

    /// maps [N, H, W], taps of P points shared by all maps or of N·P points (map n's are
    /// n·P ..< (n+1)·P) on [H, W] → out [N, P] (written).
    public static func forward(maps: Tensor, taps: BilinearTaps, into out: Tensor) {
        let (n, h, w, p, shared) = check(maps, taps, out)
        let mp = maps.data, op = out.data
        Parallel.forEach(n, grain: Swift.max(1, 4096 / Swift.max(p, 1))) { r in
            for i in r {
                taps.sample(mp + i * h * w, points: shared ? 0 : i * p, p, into: op + i * p)
            }
        }
    }

    /// dMaps [N, H, W] += adjoint of `forward(maps:taps:into:)` applied to dOut [N, P].
    public static func backward(dOut: Tensor, taps: BilinearTaps, dMaps: Tensor) {
        let (n, h, w, p, shared) = check(dMaps, taps, dOut)
        let dm = dMaps.data, g = dOut.data
        Parallel.forEach(n, grain: Swift.max(1, 4096 / Swift.max(p, 1))) { r in
            for i in r {
                taps.scatter(g + i * p, points: shared ? 0 : i * p, p, into: dm + i * h * w)
            }
        }
    }

    private static func check(_ maps: Tensor, _ points: Tensor) -> (Int, Int, Int, Int, Bool) {
        precondition(maps.rank == 3, "PointSample: maps \(maps.shape), expected [N, H, W]")
        precondition(points.rank == 3 && points.shape[2] == 2, "PointSample: points \(points.shape), expected [N, P, 2]")
        let n = maps.shape[0]
        precondition(points.shape[0] == n || points.shape[0] == 1, "PointSample: points \(points.shape) for \(n) maps")
        return (n, maps.shape[1], maps.shape[2], points.shape[1], points.shape[0] == 1 && n != 1)
    }

    /// (N, H, W, P, shared) of maps [N, H, W], samples [N, P] and taps of P (shared) or N·P points.
    private static func check(_ maps: Tensor, _ taps: BilinearTaps, _ samples: Tensor) -> (Int, Int, Int, Int, Bool) {
        precondition(maps.rank == 3, "PointSample: maps \(maps.shape), expected [N, H, W]")
        let (n, h, w) = (maps.shape[0], maps.shape[1], maps.shape[2])
        precondition(taps.width == w && taps.height == h, "PointSample: taps on \(taps.height)×\(taps.width) for maps \(maps.shape)")
        let p = n == 0 ? 0 : samples.count / n
        precondition(samples.count == n * p && (taps.count == n * p || taps.count == p),
                     "PointSample: \(taps.count) taps, samples \(samples.shape) for \(n) maps")
        return (n, h, w, p, taps.count != n * p)
    }
}
