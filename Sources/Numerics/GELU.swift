import Foundation

/// Exact (erf) GELU, as `torch.nn.GELU()` with `approximate="none"`:
///
///     gelu(x)  = ½ x (1 + erf(x/√2))
///     gelu'(x) = ½ (1 + erf(x/√2)) + x · φ(x),   φ(x) = exp(−x²/2)/√(2π)
///
/// plus the fused bias + GELU the MLP uses after its first matrix product.
extension Kernels {
    @usableFromInline static let invSqrt2: Float = 0.70710678118654752
    @usableFromInline static let invSqrt2Pi: Float = 0.39894228040143268

    @inline(__always) public static func gelu(_ x: Float) -> Float { 0.5 * x * (1 + erff(x * invSqrt2)) }

    @inline(__always) public static func geluDerivative(_ x: Float) -> Float {
        0.5 * (1 + erff(x * invSqrt2)) + x * invSqrt2Pi * expf(-0.5 * x * x)
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
        Parallel.forEach(rows, grain: Swift.max(1, elementGrain / 4 / Swift.max(cols, 1))) { r in
            for i in r {
                let p = pre + i * cols, o = out + i * cols
                if let b = bias {
                    for j in 0..<cols { let v = p[j] + b[j]; p[j] = v; o[j] = gelu(v) }
                } else {
                    for j in 0..<cols { o[j] = gelu(p[j]) }
                }
            }
        }
    }

    /// In place: `g[i] = gelu'(pre[i]) · g[i]` (turns the gradient of the GELU output into
    /// that of its input, overwriting it).
    public static func geluBackwardInPlace(_ g: UnsafeMutablePointer<Float>, preActivation pre: UnsafePointer<Float>,
                                           count n: Int) {
        Parallel.forEach(n, grain: elementGrain / 4) { r in
            for i in r { g[i] *= geluDerivative(pre[i]) }
        }
    }
}
