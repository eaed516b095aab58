import Foundation
import Numerics

/// Gradient clipping by global norm (`torch.nn.utils.clip_grad_norm_`, norm type 2):
///
///     n = ‖g‖₂ over all trainable parameters
///     g ← g · min(1, max_norm / (n + 1e-6))
///
/// Applied to the flat gradient buffer after the all-reduce, so every rank clips alike.
public enum GradientClipping {
    /// The global L2 norm of `grads` (accumulated in double precision).
    public static func norm(_ grads: Tensor) -> Double {
        let g = grads.data
        var s = 0.0
        for i in 0..<grads.count { let x = Double(g[i]); s += x * x }
        return s.squareRoot()
    }

    /// Scales `grads` so that its norm is at most `maxNorm`; returns the norm before.
    @discardableResult
    public static func clip(_ grads: Tensor, maxNorm: Double) -> Double {
        let n = norm(grads)
        let coef = Float(maxNorm / (n + 1e-6))
        if coef < 1 {
            let g = grads.data
            for i in 0..<grads.count { g[i] *= coef }
        }
        return n
    }
}
