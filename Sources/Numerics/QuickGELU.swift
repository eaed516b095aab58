/// CLIP's QuickGELU (OpenAI's `x * torch.sigmoid(1.702 * x)`):
///
///     q(x)  = x · σ(1.702 x)
///     q'(x) = σ(1.702 x) · (1 + 1.702 x (1 − σ(1.702 x)))
///
/// σ uses `fastExp` (≤ 2 ulp from `expf`), so the loops vectorise. The MLP applies it
/// through the fused bias + activation kernels (`ActivationEpilogue.swift`), as GELU.
extension Kernels {
    @usableFromInline static let quickGELUSlope: Float = 1.702

    @inline(__always) static func quickSigmoid(_ x: SIMD8<Float>) -> SIMD8<Float> {
        1 / (1 + fastExp(-quickGELUSlope * x))
    }

    @inline(__always) static func quickGELU(_ x: SIMD8<Float>) -> SIMD8<Float> { x * quickSigmoid(x) }

    @inline(__always) static func quickGELUDerivative(_ x: SIMD8<Float>) -> SIMD8<Float> {
        let s = quickSigmoid(x)
        return s * (1 + quickGELUSlope * x * (1 - s))
    }

    /// q of one value (the 8-lane arithmetic, so the same bits as the kernels).
    public static func quickGELU(_ x: Float) -> Float { QuickGELU.value(x) }

    /// q' of one value.
    public static func quickGELUDerivative(_ x: Float) -> Float { QuickGELU.derivative(x) }
}

enum QuickGELU: PointwiseActivation {
    @inline(__always) static func value(_ x: SIMD8<Float>) -> SIMD8<Float> { Kernels.quickGELU(x) }
    @inline(__always) static func derivative(_ x: SIMD8<Float>) -> SIMD8<Float> { Kernels.quickGELUDerivative(x) }
}
