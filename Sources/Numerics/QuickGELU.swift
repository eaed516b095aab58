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
        Parallel.forEach(rows, grain: Swift.max(1, elementGrain / 4 / Swift.max(cols, 1))) { r in
            for i in r {
                let p = pre + i * cols, o = out + i * cols
                var j = 0
                if let b = bias {
                    while j + 8 <= cols {
                        let v = p.load8(j) + b.load8(j)
                        p.store8(v, j)
                        o.store8(quickGELU(v), j)
                        j += 8
                    }
                    while j < cols { let v = p[j] + b[j]; p[j] = v; o[j] = quickGELU(v); j += 1 }
                } else {
                    while j + 8 <= cols { o.store8(quickGELU(p.load8(j)), j); j += 8 }
                    while j < cols { o[j] = quickGELU(p[j]); j += 1 }
                }
            }
        }
    }

    /// In place: `g[i] = q'(pre[i]) · g[i]`.
    public static func quickGELUBackwardInPlace(_ g: UnsafeMutablePointer<Float>, preActivation pre: UnsafePointer<Float>,
                                                count n: Int) {
        Parallel.forEach(n, grain: elementGrain / 4) { r in
            var i = r.lowerBound
            while i + 8 <= r.upperBound { g.store8(g.load8(i) * quickGELUDerivative(pre.load8(i)), i); i += 8 }
            while i < r.upperBound { g[i] *= quickGELUDerivative(pre[i]); i += 1 }
        }
    }
}
