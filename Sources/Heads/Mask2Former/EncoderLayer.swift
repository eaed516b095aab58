import Numerics
import Layers

/// One layer of the pixel decoder's deformable encoder (mmdet
/// `DeformableDetrTransformerEncoderLayer`, post-norm):
///
///     x₁ = LN₀(x + MSDeformAttn(q = x + pos, v = x, ref))     x [B, S, C] tokens of all levels
///     x₂ = LN₁(x₁ + FFN(x₁))                                   FFN C → 1024 → C, ReLU
///
/// LayerNorm eps 1e-5. `pos` [S, C] (sine + level embedding) is shared by the batch; its
/// gradient (the level embedding's) is returned summed over the batch.
/// Parameter names: `self_attn.*`, `ffn.*`, `norms.{0,1}.*` (mmdet).
public final class EncoderLayer: Module {
    public let channels: Int
    public let attention: MultiScaleDeformableAttention
    public let ffn: FeedForward
    public let norms: [LayerNorm]
    private var q = Tensor(zeros: [0]), r1 = Tensor(zeros: [0]), x1 = Tensor(zeros: [0]), r2 = Tensor(zeros: [0])
    private var input = Tensor(zeros: [0])

    public init(channels: Int = 256, heads: Int = 8, levels: Int = 3, points: Int = 4, feedforward: Int = 1024) {
        self.channels = channels
        attention = MultiScaleDeformableAttention(channels: channels, heads: heads, levels: levels, points: points)
        ffn = FeedForward(channels: channels, hidden: feedforward)
        norms = (0..<2).map { _ in LayerNorm(channels: channels, eps: 1e-5) }
    }

    public func parameters(prefix: String) -> [NamedParameter] {
        attention.parameters(prefix: prefix + "self_attn.") + ffn.parameters(prefix: prefix + "ffn.")
            + norms[0].parameters(prefix: prefix + "norms.0.") + norms[1].parameters(prefix: prefix + "norms.1.")
    }

    public func reset(rng: inout RandomGenerator) {
        ffn.reset(rng: &rng)
        attention.reset(rng: &rng)
    }

    /// x [B, S, C], pos [S, C], reference [B, S, L, 2] → output [B, S, C] (written).
    public func forward(_ x: Tensor, pos: Tensor, reference: Tensor, shapes: [(h: Int, w: Int)], into output: Tensor) {
        let C = channels, B = x.shape[0], S = x.count / (B * C)
        if q.count != x.count {
            q = Tensor(zeros: [B, S, C]); r1 = Tensor(zeros: [B, S, C]); x1 = Tensor(zeros: [B, S, C]); r2 = Tensor(zeros: [B, S, C])
        }
        input = x
        DecoderLayer.addPositions(x, pos, into: q)
        attention.forward(query: q, value: x, reference: reference, shapes: shapes, into: r1)
        Kernels.axpy(1, x, r1)
        norms[0].forward(r1.reshaped([B * S, C]), into: x1.reshaped([B * S, C]))
        ffn.forward(x1, into: r2)
        Kernels.axpy(1, x1, r2)
        norms[1].forward(r2.reshaped([B * S, C]), into: output.reshaped([B * S, C]))
    }

    /// Backward of the last forward: accumulates parameter gradients, ∂x [B, S, C] and ∂pos [S, C].
    public func backward(dOutput: Tensor, dInput: Tensor, dPos: Tensor?) {
        let C = channels, B = input.shape[0], S = input.count / (B * C)
        let rows = [B * S, C]
        let dr2 = Tensor(zeros: [B, S, C])
        norms[1].backward(dOutput: dOutput.reshaped(rows), input: r2.reshaped(rows), dInput: dr2.reshaped(rows))
        let dx1 = dr2.clone()
        ffn.backward(dOutput: dr2, input: x1, dInput: dx1)
        let dr1 = Tensor(zeros: [B, S, C])
        norms[0].backward(dOutput: dx1.reshaped(rows), input: r1.reshaped(rows), dInput: dr1.reshaped(rows))
        let dq = Tensor(zeros: [B, S, C])
        Kernels.axpy(1, dr1, dInput)
        attention.backward(dOutput: dr1, query: q, value: input, dQuery: dq, dValue: dInput)
        Kernels.axpy(1, dq, dInput)
        if let dPos {
            for b in 0..<B { Kernels.axpy(1, dq.data + b * S * C, dPos.data, count: S * C) }
        }
    }
}
