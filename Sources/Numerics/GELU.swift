import Foundation

/// Exact (erf) GELU, as `torch.nn.GELU()` with `approximate="none"`:
///
///     gelu(x)  = ½ x (1 + erf(x/√2))
///     gelu'(x) = ½ (1 + erf(x/√2)) + x · φ(x),   φ(x) = exp(−x²/2)/√(2π)
///
/// erf is Abramowitz & Stegun 7.1.26 — the approximation PyTorch's vectorised CPU kernel
/// uses for `GELU(approximate="none")` — with |error| ≤ 1.5e−7:
///
///     z = x/√2,  t = 1/(1 + p|z|),  erf(z) = sign(z) · (1 − t·(a1 + t(a2 + t(a3 + t(a4 + t a5)))) · e^{−z²})
///
/// Since e^{−z²} = e^{−x²/2} is also φ's exponential, gelu' costs one `fastExp`. No libm
/// call is left, so the loops vectorise. The MLP applies it through the fused bias +
/// activation kernels (`ActivationEpilogue.swift`).
extension Kernels {
    @usableFromInline static let invSqrt2: Float = 0.70710678118654752
    @usableFromInline static let invSqrt2Pi: Float = 0.39894228040143268

    /// (erf(x/√2), e^{−x²/2}) on 8 lanes.
    @inline(__always)
    static func erfScaled(_ x: SIMD8<Float>) -> (erf: SIMD8<Float>, gauss: SIMD8<Float>) {
        let z = x * invSqrt2
        let zb = unsafeBitCast(z, to: SIMD8<UInt32>.self)
        let az = unsafeBitCast(zb & 0x7FFF_FFFF, to: SIMD8<Float>.self)
        let t = 1 / (1 + 0.3275911 * az)
        var r = SIMD8<Float>(repeating: 1.061405429)
        r = r * t + -1.453152027
        r = r * t + 1.421413741
        r = r * t + -0.284496736
        r = r * t + 0.254829592
        let g = fastExp(-0.5 * x * x)
        let e = 1 - r * t * g
        let signed = (unsafeBitCast(e, to: SIMD8<UInt32>.self) & 0x7FFF_FFFF) | (zb & 0x8000_0000)
        return (unsafeBitCast(signed, to: SIMD8<Float>.self), g)
    }

    @inline(__always) static func gelu(_ x: SIMD8<Float>) -> SIMD8<Float> { 0.5 * x * (1 + erfScaled(x).erf) }

    @inline(__always) static func geluDerivative(_ x: SIMD8<Float>) -> SIMD8<Float> {
        let (e, g) = erfScaled(x)
        return 0.5 * (1 + e) + x * invSqrt2Pi * g
    }

    /// gelu of one value (the 8-lane arithmetic, so the same bits as the kernels).
    public static func gelu(_ x: Float) -> Float { ExactGELU.value(x) }

    /// gelu' of one value.
    public static func geluDerivative(_ x: Float) -> Float { ExactGELU.derivative(x) }
}

/// Exact GELU as the kernels compute it.
enum ExactGELU: PointwiseActivation {
    @inline(__always) static func value(_ x: SIMD8<Float>) -> SIMD8<Float> { Kernels.gelu(x) }
    @inline(__always) static func derivative(_ x: SIMD8<Float>) -> SIMD8<Float> { Kernels.geluDerivative(x) }
}
