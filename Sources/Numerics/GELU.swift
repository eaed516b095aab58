import Foundation

/// Exact (erf) GELU, as `torch.nn.GELU()` with `approximate="none"`:
///
///     gelu(x)  = ½ x (1 + erf(x/√2))
///     gelu'(x) = ½ (1 + erf(x/√2)) + x · φ(x),   φ(x) = exp(−x²/2)/√(2π)
///
/// plus the fused bias + GELU the MLP uses after its first matrix product.
///
/// erf is Abramowitz & Stegun 7.1.26 — the approximation PyTorch's vectorised CPU kernel
/// uses for `GELU(approximate="none")` — with |error| ≤ 1.5e−7:
///
///     z = x/√2,  t = 1/(1 + p|z|),  erf(z) = sign(z) · (1 − t·(a1 + t(a2 + t(a3 + t(a4 + t a5)))) · e^{−z²})
///
/// Since e^{−z²} = e^{−x²/2} is also φ's exponential, gelu' costs one `fastExp`. No libm
/// call is left, so the loops vectorise.
extension Kernels {
    @usableFromInline static let invSqrt2: Float = 0.70710678118654752
    @usableFromInline static let invSqrt2Pi: Float = 0.39894228040143268

    /// (erf(x/√2), e^{−x²/2}).
    @inline(__always)
    static func erfScaled(_ x: Float) -> (erf: Float, gauss: Float) {
        let z = x * invSqrt2
        let az = abs(z)
        let t = 1 / (1 + 0.3275911 * az)
        var r: Float = 1.061405429
        r = r * t + -1.453152027
        r = r * t + 1.421413741
        r = r * t + -0.284496736
        r = r * t + 0.254829592
        let g = fastExp(-0.5 * x * x)
        let e = 1 - r * t * g
        return (Float(signOf: z, magnitudeOf: e), g)
    }

    /// `erfScaled` on 8 lanes (the same operations lane by lane).
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

    @inline(__always) public static func gelu(_ x: Float) -> Float { 0.5 * x * (1 + erfScaled(x).erf) }

    @inline(__always) public static func geluDerivative(_ x: Float) -> Float {
        let (e, g) = erfScaled(x)
        return 0.5 * (1 + e) + x * invSqrt2Pi * g
    }

    /// `out[i] = gelu(inp[i])` (out may alias inp).
    public static func geluForward(out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, count n: Int) {
        Parallel.forEach(n, grain: elementGrain / 4) { r in
            for i in r { out[i] = gelu(input[i]) }
        }
    }

    /// `dInput[i] += gelu'(inp[i]) · dOutput[i]`.
    public static func geluBackward(dInput: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>,
                                    dOutput: UnsafePointer<Float>, count n: Int) {
        Parallel.forEach(n, grain: elementGrain / 4) { r in
            for i in r { dInput[i] += geluDerivative(input[i]) * dOutput[i] }
        }
    }

    /// Fused bias + GELU over a rows × cols matrix: `pre[i, j] += bias[j]` (the cached
    /// pre-activation), `out[i, j] = gelu(pre[i, j])`.
    public static func biasGELUForward(preActivation pre: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>?,
                                       out: UnsafeMutablePointer<Float>, rows: Int, cols: Int) {
        biasActivationForward(ExactGELU.self, preActivation: pre, bias: bias, out: out, rows: rows, cols: cols)
    }

    /// In place: `g[i] = gelu'(pre[i]) · g[i]` (turns the gradient of the GELU output into
    /// that of its input, overwriting it).
    public static func geluBackwardInPlace(_ g: UnsafeMutablePointer<Float>, preActivation pre: UnsafePointer<Float>,
                                           count n: Int) {
        activationBackwardInPlace(ExactGELU.self, g, preActivation: pre, count: n)
    }

    /// Fused bias + activation over a rows × cols matrix: `pre[i, j] += bias[j]` (the cached
    /// pre-activation), `out[i, j] = A(pre[i, j])` — the MLP's first product's epilogue,
    /// 8 lanes at a time with a scalar tail of the same operations.
    @inline(__always)
    static func biasActivationForward<A: PointwiseActivation>(_: A.Type, preActivation pre: UnsafeMutablePointer<Float>,
                                                              bias: UnsafePointer<Float>?, out: UnsafeMutablePointer<Float>,
                                                              rows: Int, cols: Int) {
        Parallel.forEach(rows, grain: Swift.max(1, elementGrain / 4 / Swift.max(cols, 1))) { r in
            for i in r {
                let p = pre + i * cols, o = out + i * cols
                var j = 0
                if let b = bias {
                    while j + 8 <= cols {
                        let v = p.load8(j) + b.load8(j)
                        p.store8(v, j)
                        o.store8(A.value(v), j)
                        j += 8
                    }
                    while j < cols { let v = p[j] + b[j]; p[j] = v; o[j] = A.value(v); j += 1 }
                } else {
                    while j + 8 <= cols { o.store8(A.value(p.load8(j)), j); j += 8 }
                    while j < cols { o[j] = A.value(p[j]); j += 1 }
                }
            }
        }
    }

    /// In place: `g[i] = A'(pre[i]) · g[i]`.
    @inline(__always)
    static func activationBackwardInPlace<A: PointwiseActivation>(_: A.Type, _ g: UnsafeMutablePointer<Float>,
                                                                  preActivation pre: UnsafePointer<Float>, count n: Int) {
        Parallel.forEach(n, grain: elementGrain / 4) { r in
            var i = r.lowerBound
            while i + 8 <= r.upperBound { g.store8(g.load8(i) * A.derivative(pre.load8(i)), i); i += 8 }
            while i < r.upperBound { g[i] *= A.derivative(pre[i]); i += 1 }
        }
    }
}

/// A pointwise nonlinearity and its derivative, in scalar and 8-lane form with the same
/// operations lane by lane (the MLP epilogue kernels are generic over it).
protocol PointwiseActivation {
    static func value(_ x: Float) -> Float
    static func value(_ x: SIMD8<Float>) -> SIMD8<Float>
    static func derivative(_ x: Float) -> Float
    static func derivative(_ x: SIMD8<Float>) -> SIMD8<Float>
}

/// Exact GELU as the kernels above compute it.
enum ExactGELU: PointwiseActivation {
    @inline(__always) static func value(_ x: Float) -> Float { Kernels.gelu(x) }
    @inline(__always) static func value(_ x: SIMD8<Float>) -> SIMD8<Float> { Kernels.gelu(x) }
    @inline(__always) static func derivative(_ x: Float) -> Float { Kernels.geluDerivative(x) }
    @inline(__always) static func derivative(_ x: SIMD8<Float>) -> SIMD8<Float> { Kernels.geluDerivative(x) }
}
