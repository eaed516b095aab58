import Foundation

/// The SwiGLU gate of DINOv2's `SwiGLUFFNFused` (ViT-g): the first projection's output
/// `x12 [rows, 2H]` is split into halves `x1 = x12[:, :H]`, `x2 = x12[:, H:]` and
///
///     hidden = silu(x1) ⊙ x2,   silu(a) = a · σ(a)
///
/// Backward, with g = ∂L/∂hidden:
///
///     dx1 = g ⊙ x2 ⊙ silu'(x1),   silu'(a) = σ(a) (1 + a (1 − σ(a)))
///     dx2 = g ⊙ silu(x1)
extension Kernels {
    @inline(__always) public static func sigmoid(_ a: Float) -> Float { 1 / (1 + expf(-a)) }

    /// hidden: [rows, H] (written); x12: [rows, 2H].
    public static func swiGLUForward(hidden: UnsafeMutablePointer<Float>, x12: UnsafePointer<Float>,
                                     rows: Int, hiddenSize H: Int) {
        Parallel.forEach(rows, grain: Swift.max(1, elementGrain / 4 / Swift.max(H, 1))) { r in
            for i in r {
                let x1 = x12 + i * 2 * H, x2 = x1 + H, h = hidden + i * H
                for j in 0..<H { h[j] = x1[j] * sigmoid(x1[j]) * x2[j] }
            }
        }
    }

    /// dX12: [rows, 2H] (accumulated); dHidden: [rows, H]; x12: [rows, 2H].
    public static func swiGLUBackward(dX12: UnsafeMutablePointer<Float>, dHidden: UnsafePointer<Float>,
                                      x12: UnsafePointer<Float>, rows: Int, hiddenSize H: Int) {
        Parallel.forEach(rows, grain: Swift.max(1, elementGrain / 4 / Swift.max(H, 1))) { r in
            for i in r {
                let x1 = x12 + i * 2 * H, x2 = x1 + H, g = dHidden + i * H
                let d1 = dX12 + i * 2 * H, d2 = d1 + H
                for j in 0..<H {
                    let a = x1[j], s = sigmoid(a)
                    d1[j] += g[j] * x2[j] * s * (1 + a * (1 - s))
                    d2[j] += g[j] * a * s
                }
            }
        }
    }
}
