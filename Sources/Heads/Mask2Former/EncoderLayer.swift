import Numerics
import Layers

/// One layer of the pixel decoder's deformable encoder (mmdet
/// `DeformableDetrTransformerEncoderLayer`, post-norm):
///
///     x₁ = LN₀(x + MSDeformAttn(q = x + pos, v = x, ref))     x [B, S, C] tokens of all levels
///     x₂ = LN₁(x₁ + FFN(x₁))                                   FFN C → 1024 → C, ReLU
///
/// LayerNorm eps 1e-5. `pos` [S, C] (sine + level embedding) is shared by the batch; its
/// gradient (the level embedding's) is returned summed over the batch. Backward work buffers
/// come from `scratch` (keys `enc.*`), shared with the other layers of the head.
/// Parameter names: `self_attn.*`, `ffn.*`, `norms.{0,1}.*` (mmdet).
public final class EncoderLayer: Module {
    public let channels: Int
    public let attention: MultiScaleDeformableAttention
    public let ffn: MLP
    public let norms: [LayerNorm]
    private var q = Tensor(zeros: [0]), r1 = Tensor(zeros: [0]), x1 = Tensor(zeros: [0]), r2 = Tensor(zeros: [0])
    private var input = Tensor(zeros: [0])
    private let scratch: ScratchArena

    public init(channels: Int = 256, heads: Int = 8, levels: Int = 3, points: Int = 4, feedforward: Int = 1024,
                scratch: ScratchArena = ScratchArena()) {
        self.channels = channels
        self.scratch = scratch
        attention = MultiScaleDeformableAttention(channels: channels, heads: heads, levels: levels, points: points,
                                                  scratch: scratch)
        ffn = MLP(channels: channels, hiddenChannels: feedforward, activation: .relu, naming: .mmcvFFN)
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
        PostNormResidual.forward(x, sum: r1, norm: norms[0], into: x1)
        PostNormResidual.forward(x1, through: ffn, sum: r2, norm: norms[1], into: output)
    }

    /// Backward of the last forward: accumulates parameter gradients, ∂x [B, S, C] and ∂pos [S, C].
    public func backward(dOutput: Tensor, dInput: Tensor, dPos: Tensor?) {
        let C = channels, B = input.shape[0], S = input.count / (B * C)
        let dx1 = scratch.tensor("enc.dx1", [B, S, C])
        PostNormResidual.backward(dOutput: dOutput, input: x1, through: ffn, sum: r2, norm: norms[1], work: scratch, workKey: "enc.dr2", dInput: dx1)
        let dr1 = scratch.tensor("enc.dr1", [B, S, C])
        PostNormResidual.backward(dOutput: dx1, sum: r1, norm: norms[0], into: dr1)
        let dq = scratch.zeros("enc.dq", [B, S, C])
        Kernels.axpy(1, dr1, dInput)
        attention.backward(dOutput: dr1, query: q, value: input, dQuery: dq, dValue: dInput)
        Kernels.axpy(1, dq, dInput)
        if let dPos {
            for b in 0..<B { Kernels.axpy(1, dq.data + b * S * C, dPos.data, count: S * C) }
        }
    }
}
