import Foundation
import Numerics

/// Optimisers over a `ParameterSet`'s flat buffers, with PyTorch semantics.
///
/// **AdamW** (`torch.optim.AdamW`, single-tensor path; step t = 1, 2, …):
///
///     p ← p · (1 − lr·λ)                       decoupled weight decay (λ = 0 for
///                                               tokens, scale, norms, biases)
///     m ← β₁·m + (1 − β₁)·g                    exp_avg
///     v ← β₂·v + (1 − β₂)·g²                   exp_avg_sq
///     p ← p − (lr / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε)
///
/// ε is added after the square root of the bias-corrected second moment, exactly as
/// PyTorch does. **SGD** (plain, no momentum, optional decoupled decay off by default):
/// `p ← p − lr·(g + λ·p)` with λ = `weightDecay` on decaying parameters (PyTorch SGD's
/// L2 form).
///
/// The state (moments and step count) is plain data so that checkpoints restore it and a
/// resumed run continues bit-identically.
public enum OptimizerKind: String, CaseIterable, Sendable, Decodable {
    case adamw, sgd
}

public final class Optimizer {
    public let kind: OptimizerKind
    public let parameters: ParameterSet
    public var weightDecay: Double
    public var beta1: Double
    public var beta2: Double
    public var eps: Double
    /// First and second moments `[P]` (AdamW only; zero for SGD).
    public let expAvg: Tensor
    public let expAvgSq: Tensor
    /// Number of steps taken so far.
    public var stepCount: Int = 0

    public init(_ kind: OptimizerKind, parameters: ParameterSet, weightDecay: Double = 0.05,
                betas: (Double, Double) = (0.9, 0.999), eps: Double = 1e-8) {
        self.kind = kind
        self.parameters = parameters
        self.weightDecay = weightDecay
        self.beta1 = betas.0
        self.beta2 = betas.1
        self.eps = eps
        expAvg = Tensor(zeros: [parameters.count])
        expAvgSq = Tensor(zeros: [parameters.count])
    }

    /// One update of `parameters.values` from `parameters.grads` with learning rate `lr`.
    public func step(lr: Double) {
        stepCount += 1
        switch kind {
        case .adamw: adamw(lr: lr)
        case .sgd: sgd(lr: lr)
        }
    }

    private func adamw(lr: Double) {
        // Scalars as PyTorch forms them: in double precision, then rounded to Float.
        let t = Double(stepCount)
        let w1 = Float(1 - beta1), b2 = Float(beta2), w2 = Float(1 - beta2), eps = Float(eps)
        let stepSize = Float(lr / (1 - pow(beta1, t)))
        let bc2Sqrt = Float((1 - pow(beta2, t)).squareRoot())
        let p = parameters.values.data, g = parameters.grads.data
        let m = expAvg.data, v = expAvgSq.data
        for e in parameters.entries {
            let decay: Float = e.decays ? Float(1 - lr * weightDecay) : 1
            let base = e.offset
            Parallel.forEach(e.count, grain: 16_384) { range in
                for j in range {
                    let i = base + j
                    var pi = p[i]
                    if decay != 1 { pi *= decay }
                    let gi = g[i]
                    // torch's CPU kernels: lerp_ as fma(w, g − m, m); mul_(β₂) then
                    // addcmul_ as fma(w·g, g, v). Fused the same way for ulp parity.
                    let mi = m[i].addingProduct(w1, gi - m[i])
                    let vi = (v[i] * b2).addingProduct(w2 * gi, gi)
                    m[i] = mi
                    v[i] = vi
                    let denom = vi.squareRoot() / bc2Sqrt + eps
                    p[i] = pi - stepSize * (mi / denom)
                }
            }
        }
    }

    private func sgd(lr: Double) {
        let p = parameters.values.data, g = parameters.grads.data
        for e in parameters.entries {
            let wd: Float = e.decays ? Float(weightDecay) : 0
            let lr = Float(lr)
            let base = e.offset
            Parallel.forEach(e.count, grain: 16_384) { range in
                for j in range {
                    let i = base + j
                    p[i] -= lr * (g[i] + wd * p[i])
                }
            }
        }
    }
}
