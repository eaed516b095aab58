/// The activations the MLP fuses with the bias add after its first product (exact GELU for
/// DINOv2 and EVA02, QuickGELU for CLIP), and the two kernels that apply them:
///
///     forward:   pre[i, j] += bias[j],  out[i, j] = act(pre[i, j])    (pre is the cached pre-activation)
///     backward:  g[i] = act'(pre[i]) · g[i]                           (in place)
///
/// Both run 8 lanes at a time; the tail of a row goes through the same 8-lane arithmetic on
/// a broadcast, so every element gets the same bits wherever it falls.
public enum FusedActivation: Sendable {
    /// Exact (erf) GELU, `torch.nn.GELU()`.
    case gelu
    /// CLIP's `x · σ(1.702 x)`.
    case quickGELU
}

extension Kernels {
    /// `pre[i, j] += bias[j]` (bias optional), `out[i, j] = act(pre[i, j])` over a rows × cols matrix.
    public static func biasActivationForward(_ activation: FusedActivation, preActivation pre: UnsafeMutablePointer<Float>,
                                             bias: UnsafePointer<Float>?, out: UnsafeMutablePointer<Float>,
                                             rows: Int, cols: Int) {
        // One specialisation per activation: the switch runs once per call, not per element.
        switch activation {
        case .gelu: biasActivationForward(ExactGELU.self, pre, bias, out, rows, cols)
        case .quickGELU: biasActivationForward(QuickGELU.self, pre, bias, out, rows, cols)
        }
    }

    /// In place: `g[i] = act'(pre[i]) · g[i]` (turns the gradient of the activation's output
    /// into that of its input, overwriting it).
    public static func activationBackwardInPlace(_ activation: FusedActivation, _ g: UnsafeMutablePointer<Float>,
                                                 preActivation pre: UnsafePointer<Float>, count n: Int) {
        switch activation {
        case .gelu: activationBackwardInPlace(ExactGELU.self, g, pre, n)
        case .quickGELU: activationBackwardInPlace(QuickGELU.self, g, pre, n)
        }
    }

    @inline(__always)
    private static func biasActivationForward<A: PointwiseActivation>(_: A.Type, _ pre: UnsafeMutablePointer<Float>,
                                                                      _ bias: UnsafePointer<Float>?,
                                                                      _ out: UnsafeMutablePointer<Float>, _ rows: Int, _ cols: Int) {
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

    @inline(__always)
    private static func activationBackwardInPlace<A: PointwiseActivation>(_: A.Type, _ g: UnsafeMutablePointer<Float>,
                                                                          _ pre: UnsafePointer<Float>, _ n: Int) {
        Parallel.forEach(n, grain: elementGrain / 4) { r in
            var i = r.lowerBound
            while i + 8 <= r.upperBound { g.store8(g.load8(i) * A.derivative(pre.load8(i)), i); i += 8 }
            while i < r.upperBound { g[i] *= A.derivative(pre[i]); i += 1 }
        }
    }
}

/// A pointwise nonlinearity and its derivative on 8 lanes; one value goes through the same
/// lanes on a broadcast.
protocol PointwiseActivation {
    static func value(_ x: SIMD8<Float>) -> SIMD8<Float>
    static func derivative(_ x: SIMD8<Float>) -> SIMD8<Float>
}

extension PointwiseActivation {
    @inline(__always) static func value(_ x: Float) -> Float { value(SIMD8<Float>(repeating: x))[0] }
    @inline(__always) static func derivative(_ x: Float) -> Float { derivative(SIMD8<Float>(repeating: x))[0] }
}
