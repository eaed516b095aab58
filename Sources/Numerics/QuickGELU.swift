import Foundation

/// CLIP's QuickGELU (OpenAI's `x * torch.sigmoid(1.702 * x)`):
///
///     q(x)  = x · σ(1.702 x)
///     q'(x) = σ(1.702 x) · (1 + 1.702 x (1 − σ(1.702 x)))
///
/// with the bias add fused after the MLP's first product, as for GELU. σ uses `fastExp`
/// (≤ 2 ulp from `expf`), so the loops vectorise.
extension Kernels {
    @usableFromInline static let quickGELUSlope: Float = 1.702

    @inline(__always) static func quickSigmoid(_ x: SIMD8<Float>) -> SIMD8<Float> {
        1 / (1 + fastExp(-quickGELUSlope * x))
    }

    @inline(__always) public static func quickGELU(_ x: Float) -> Float {
        x / (1 + fastExp(-quickGELUSlope * x))
    }

    @inline(__always) public static func quickGELUDerivative(_ x: Float) -> Float {
        let s = 1 / (1 + fastExp(-quickGELUSlope * x))
        return s * (1 + quickGELUSlope * x * (1 - s))
    }

    @inline(__always) static func quickGELU(_ x: SIMD8<Float>) -> SIMD8<Float> { x * quickSigmoid(x) }

    @inline(__always) static func quickGELUDerivative(_ x: SIMD8<Float>) -> SIMD8<Float> {
        let s = quickSigmoid(x)
        return s * (1 + quickGELUSlope * x * (1 - s))
    }

    /// Fused bias + QuickGELU over a rows × cols matrix: `pre[i, j] += bias[j]` (the cached
    /// pre-activation), `out[i, j] = q(pre[i, j])`.
    public static func biasQuickGELUForward(preActivation pre: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>?,
                                            out: UnsafeMutablePointer<Float>, rows: Int, cols: Int) {
        biasActivationForward(QuickGELU.self, preActivation: pre, bias: bias, out: out, rows: rows, cols: cols)
    }

    /// In place: `g[i] = q'(pre[i]) · g[i]`.
    public static func quickGELUBackwardInPlace(_ g: UnsafeMutablePointer<Float>, preActivation pre: UnsafePointer<Float>,
                                                count n: Int) {
        activationBackwardInPlace(QuickGELU.self, g, preActivation: pre, count: n)
    }
}

enum QuickGELU: PointwiseActivation {
    @inline(__always) static func value(_ x: Float) -> Float { Kernels.quickGELU(x) }
    @inline(__always) static func value(_ x: SIMD8<Float>) -> SIMD8<Float> { Kernels.quickGELU(x) }
    @inline(__always) static func derivative(_ x: Float) -> Float { Kernels.quickGELUDerivative(x) }
    @inline(__always) static func derivative(_ x: SIMD8<Float>) -> SIMD8<Float> { Kernels.quickGELUDerivative(x) }
}
