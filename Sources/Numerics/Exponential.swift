/// A branch-free `exp` for Float (no libm call), on 8 lanes, used by the softmax
/// and GELU kernels where `expf` per element dominated their time:
///
///     n = round(x · log₂e)                          (the 1.5·2²³ trick: no rounding instruction)
///     r = x − n·ln2                                 (ln2 split in two for accuracy, |r| ≤ ln2/2)
///     eʳ ≈ 1 + r + r²·P(r)                          (Cephes `expf` polynomial, degree 5)
///     eˣ = eʳ · 2ⁿ                                  (2ⁿ built in the exponent bits)
///
/// x is clamped to [−87.3, 88.7] (results 2⁻¹²⁶…FLT_MAX) and anything below −87.3 (−∞ of a
/// masked attention logit above all) gives exactly 0, as `expf` does for −∞: a masked key must
/// get zero probability, not 1e−38. Relative error ≤ 2 ulp against `expf` over the clamped range.
extension Kernels {
    /// `fastExp` of one value: the 8-lane form below on a broadcast, so scalar tails give the
    /// vector loops' bits exactly.
    @inline(__always)
    public static func fastExp(_ x: Float) -> Float { fastExp(SIMD8<Float>(repeating: x))[0] }

    /// `fastExp` on 8 lanes.
    @inline(__always)
    public static func fastExp(_ x: SIMD8<Float>) -> SIMD8<Float> {
        // (mask selects, not pointwiseMin/Max: those are generic loops the optimiser leaves as calls)
        let lo = SIMD8<Float>(repeating: -87.3), hi = SIMD8<Float>(repeating: 88.7)
        let xc = x.replacing(with: lo, where: x .< lo).replacing(with: hi, where: x .> hi)
        let shifter = SIMD8<Float>(repeating: 12582912)
        let t = xc * 1.44269504088896341 + shifter
        let n = t - shifter
        var r = xc - n * 0.693359375
        r = r - n * -2.12194440e-4
        var p = SIMD8<Float>(repeating: 1.9875691500e-4)
        p = p * r + 1.3981999507e-3
        p = p * r + 8.3334519073e-3
        p = p * r + 4.1665795894e-2
        p = p * r + 1.6666665459e-1
        p = p * r + 5.0000001201e-1
        let er = p * (r * r) + r + 1
        let bits = (unsafeBitCast(t, to: SIMD8<Int32>.self) &- 0x4B40_0000 &+ 127) &<< 23
        return (er * unsafeBitCast(bits, to: SIMD8<Float>.self)).replacing(with: 0, where: x .< lo)
    }
}

/// Unaligned 8-lane loads and stores for the kernels' vector loops.
extension UnsafeMutablePointer where Pointee == Float {
    @inline(__always) func load8(_ i: Int) -> SIMD8<Float> {
        UnsafeRawPointer(self + i).loadUnaligned(as: SIMD8<Float>.self)
    }
    @inline(__always) func store8(_ v: SIMD8<Float>, _ i: Int) {
        UnsafeMutableRawPointer(self + i).storeBytes(of: v, as: SIMD8<Float>.self)
    }
}
extension UnsafePointer where Pointee == Float {
    @inline(__always) func load8(_ i: Int) -> SIMD8<Float> {
        UnsafeRawPointer(self + i).loadUnaligned(as: SIMD8<Float>.self)
    }
}
