import Backbone
import PEFT

/// The exact matrix-product FLOP count of one training step (`causal-tune bench`).
///
/// Counted: every GEMM the step performs, as `2·m·n·k` (one multiply + one add per term).
/// Not counted: elementwise work (LayerNorm, GELU, softmax, bias, residuals, masks, the
/// bilinear resize and cross-entropy of the head, AdamW) — O(size) next to the GEMMs.
/// With `B` images, `T = 1 + R + N` tokens, `N = h·w` patches, `C` channels, `F` the MLP
/// hidden width, `P` the patch size, `L` blocks:
///
///     patch embed (forward only; images need no gradient)   2·B·N·C·3P²
///     block forward      qkv 2BTC·3C, QKᵀ 2BT²C, PV 2BT²C, proj 2BTC², MLP 2·2BTCF (SwiGLU: 2BTC·2F + 2BTFC)
///     block backward     input gradients only (frozen): the same linear GEMMs once more and
///                        the attention four times (dP = dO Vᵀ, dV = Pᵀ dO, dQ = dS K, dK = dSᵀ Q)
///     recompute (on)     the block forward once more in the backward, and the adapter forward
///
/// The backbone's backward runs through blocks `L−1 … 1` only: block 0's backward would
/// only give ∂L/∂x₀, which nothing trainable needs (`DINOv2.backward(inputGradient: false)`);
/// without PEFT there is no backbone backward at all. The recompute forward covers all `L`
/// blocks (block 0's output is the first adapter's input).
/// Causal-Tune per layer, `rows = B·N`, `m` tokens (`r` the low rank, if any), `X` the
/// transform cost `Σ_stages 2·hs·ws·C·(hs + ws)` per image (DCT/Hartley: one stage h×w;
/// Haar: one stage per level; identity: 0):
///
///     forward    f_t 2(m−1)C², T 2·B·X, QTᵢᵀ 2·rows·m·C, S·V 2·rows·(m−1)·C, f_d 2·rows·C², T⁻¹ 2·B·X
///                (low rank: Tᵢ = AᵢBᵢ 2·m·r·C)
///     backward   T 2·B·X, f_d 4·rows·C², dS and dV 4·rows·(m−1)·C, dQ and dTᵢ 4·rows·m·C,
///                f_t 4(m−1)C², T⁻¹ 2·B·X (low rank: 4·m·r·C)
///
/// The linear head with `J` out blocks and `K` classes: forward 2·rows·J·C·K, backward
/// 4·rows·J·C·K. The Mask2Former head is not counted (`headCounted` false).
public struct StepFLOPs: Equatable, Sendable {
    public var patchEmbed = 0.0
    public var backboneForward = 0.0
    public var backboneBackward = 0.0
    public var recompute = 0.0
    public var peftForward = 0.0
    public var peftBackward = 0.0
    public var headForward = 0.0
    public var headBackward = 0.0
    public var headCounted = true

    public var total: Double {
        patchEmbed + backboneForward + backboneBackward + recompute + peftForward + peftBackward + headForward + headBackward
    }

    public init() {}

    /// The count for a model of these dimensions (see the type's documentation).
    /// `peft`: nil for `method: none`. `headClasses`/`headOutputs`: the linear head's K and J,
    /// nil for a head that is not counted.
    public static func count(architecture a: BackboneArchitecture, imageSize: Int, patchSize: Int, batch: Int,
                             recompute: Bool, peft: CausalTuneOptions?, headClasses: Int?, headOutputs: Int) -> StepFLOPs {
        let B = Double(batch), C = Double(a.channels), L = Double(a.depth)
        let g = imageSize / patchSize
        let N = Double(g * g), T = N + Double(a.prefixTokens), P = Double(patchSize)
        var f = StepFLOPs()
        f.patchEmbed = 2 * B * N * C * 3 * P * P
        let linear: Double
        switch a.feedForward {
        case .mlp(let h, _):
            let perToken: Double = 4 * C + 2 * Double(h)
            linear = 2 * B * T * C * perToken
        case .swiglu(let h, _):
            let perToken: Double = 4 * C + 3 * Double(h)
            linear = 2 * B * T * C * perToken
        }
        let attention = 2 * (2 * B * T * T * C)
        f.backboneForward = L * (linear + attention)
        let trainedBlocks = (peft.map { $0.method != .none } ?? false) ? L - 1 : 0
        f.backboneBackward = trainedBlocks * (linear + 2 * attention)
        if recompute { f.recompute = f.backboneForward }
        if let o = peft, o.method != .none {
            let m = Double(o.tokens), rows = B * N
            var x = 0.0
            var hs = g, ws = g
            switch o.effectiveTransform {
            case .identity: x = 0
            case .haar:
                while hs % 2 == 0 && ws % 2 == 0 && hs > 0 {
                    x += 2 * Double(hs * ws) * C * Double(hs + ws)
                    hs /= 2; ws /= 2
                }
            default: x = 2 * Double(hs * ws) * C * Double(hs + ws)
            }
            let lowRank = o.loraRank.map { 2 * m * Double($0) * C } ?? 0
            let fwd = 2 * (m - 1) * C * C + 2 * B * x + 2 * rows * m * C + 2 * rows * (m - 1) * C + 2 * rows * C * C
                + 2 * B * x + lowRank
            let bwd = 2 * B * x + 4 * rows * C * C + 4 * rows * (m - 1) * C + 4 * rows * m * C + 4 * (m - 1) * C * C
                + 2 * B * x + 2 * lowRank
            f.peftForward = L * fwd * (recompute ? 2 : 1)
            f.peftBackward = L * bwd
        }
        if let K = headClasses {
            let rows = B * N, J = Double(headOutputs)
            f.headForward = 2 * rows * J * C * Double(K)
            f.headBackward = 4 * rows * J * C * Double(K)
        } else {
            f.headCounted = false
        }
        return f
    }
}
