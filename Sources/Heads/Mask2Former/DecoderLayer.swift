import Numerics
import Layers

/// One layer of Mask2Former's transformer decoder (mmdet `Mask2FormerTransformerDecoderLayer`,
/// post-norm, order cross_attn → norm → self_attn → norm → ffn → norm):
///
///     x₁ = LN₁(x + CrossAttn(q = x + p, k = m + p_m, v = m, mask))     x [B, Q, C] queries, p [Q, C] query positions
///     x₂ = LN₂(x₁ + SelfAttn(q = k = x₁ + p, v = x₁))                  m [B, S, C] memory, p_m [S, C] its positions
///     x₃ = LN₃(x₂ + FFN(x₂))                                           FFN C → 2048 → C, ReLU
///
/// LayerNorm eps 1e-5 (torch default). Backward gives ∂x, ∂p (the query positions are learned
/// — from Rein's tokens — so they get a gradient) and ∂m; p_m is a constant.
/// Backward work buffers come from `scratch` (keys `dec.*`), shared with the head's other layers.
/// Parameter names: `cross_attn.attn.*`, `self_attn.attn.*`, `ffn.*`, `norms.{0,1,2}.*` (mmdet).
public final class DecoderLayer: Module {
    public let channels: Int
    public let crossAttention: MultiheadAttention, selfAttention: MultiheadAttention
    public let ffn: MLP
    public let norms: [LayerNorm]

    private var caQ = Tensor(zeros: [0]), caK = Tensor(zeros: [0]), r1 = Tensor(zeros: [0]), x1 = Tensor(zeros: [0])
    private var saQ = Tensor(zeros: [0]), r2 = Tensor(zeros: [0]), x2 = Tensor(zeros: [0]), r3 = Tensor(zeros: [0])
    private var memory = Tensor(zeros: [0])
    private let scratch: ScratchArena

    public init(channels: Int = 256, heads: Int = 8, feedforward: Int = 2048, scratch: ScratchArena = ScratchArena()) {
        self.channels = channels
        self.scratch = scratch
        crossAttention = MultiheadAttention(channels: channels, heads: heads, scratch: scratch)
        selfAttention = MultiheadAttention(channels: channels, heads: heads, scratch: scratch)
        ffn = MLP(channels: channels, hiddenChannels: feedforward, activation: .relu, naming: .mmcvFFN)
        norms = (0..<3).map { _ in LayerNorm(channels: channels, eps: 1e-5) }
    }

    public func parameters(prefix: String) -> [NamedParameter] {
        var p = crossAttention.parameters(prefix: prefix + "cross_attn.attn.")
        p += selfAttention.parameters(prefix: prefix + "self_attn.attn.")
        p += ffn.parameters(prefix: prefix + "ffn.")
        for (i, n) in norms.enumerated() { p += n.parameters(prefix: prefix + "norms.\(i).") }
        return p
    }

    public func reset(rng: inout RandomGenerator) {
        crossAttention.reset(rng: &rng)
        selfAttention.reset(rng: &rng)
        ffn.reset(rng: &rng)
    }

    /// a [B, N, C] + p [N, C] (broadcast over B) → out (written).
    static func addPositions(_ a: Tensor, _ p: Tensor, into out: Tensor) {
        let n = p.count, b = a.count / n
        for i in 0..<b { Kernels.add(a.data + i * n, p.data, into: out.data + i * n, count: n) }
    }

    /// query [B, Q, C], queryPos [Q, C], memory [B, S, C], memoryPos [S, C], mask [B, Q, S]
    /// (true = masked) → output [B, Q, C] (written).
    public func forward(query: Tensor, queryPos: Tensor, memory: Tensor, memoryPos: Tensor, mask: [Bool]?, into output: Tensor) {
        let C = channels, B = query.shape[0], Q = query.count / (B * C), S = memory.count / (B * C)
        if caQ.count != B * Q * C || caK.count != B * S * C {
            caQ = Tensor(zeros: [B, Q, C]); r1 = Tensor(zeros: [B, Q, C]); x1 = Tensor(zeros: [B, Q, C])
            saQ = Tensor(zeros: [B, Q, C]); r2 = Tensor(zeros: [B, Q, C]); x2 = Tensor(zeros: [B, Q, C]); r3 = Tensor(zeros: [B, Q, C])
            caK = Tensor(zeros: [B, S, C])
        }
        self.memory = memory
        DecoderLayer.addPositions(query, queryPos, into: caQ)
        DecoderLayer.addPositions(memory, memoryPos, into: caK)
        crossAttention.forward(query: caQ, key: caK, value: memory, mask: mask, into: r1)
        PostNormResidual.forward(query, sum: r1, norm: norms[0], into: x1)
        DecoderLayer.addPositions(x1, queryPos, into: saQ)
        selfAttention.forward(query: saQ, key: saQ, value: x1, mask: nil, into: r2)
        PostNormResidual.forward(x1, sum: r2, norm: norms[1], into: x2)
        PostNormResidual.forward(x2, through: ffn, sum: r3, norm: norms[2], into: output)
    }

    /// Backward of the last forward (same `query`): accumulates parameter gradients and
    /// ∂query, ∂queryPos [Q, C], ∂memory where given.
    public func backward(dOutput: Tensor, query: Tensor, dQuery: Tensor?, dQueryPos: Tensor?, dMemory: Tensor?) {
        let C = channels, B = query.shape[0], Q = query.count / (B * C)
        let dx2 = scratch.tensor("dec.dx2", [B, Q, C])
        PostNormResidual.backward(dOutput: dOutput, input: x2, through: ffn, sum: r3, norm: norms[2], work: scratch, workKey: "dec.dr3", dInput: dx2)
        let dr2 = scratch.tensor("dec.dr2", [B, Q, C])
        PostNormResidual.backward(dOutput: dx2, sum: r2, norm: norms[1], into: dr2)
        let dx1 = scratch.copy("dec.dx1", of: dr2), dSaQ = scratch.zeros("dec.dSaQ", [B, Q, C])
        selfAttention.backward(dOutput: dr2, query: saQ, key: saQ, value: x1, dQuery: dSaQ, dKey: dSaQ, dValue: dx1)
        Kernels.axpy(1, dSaQ, dx1)
        let dr1 = scratch.tensor("dec.dr1", [B, Q, C])
        PostNormResidual.backward(dOutput: dx1, sum: r1, norm: norms[0], into: dr1)
        let dCaQ = scratch.zeros("dec.dCaQ", [B, Q, C])
        let dCaK = dMemory == nil ? nil : scratch.zeros("dec.dCaK", memory.shape)
        crossAttention.backward(dOutput: dr1, query: caQ, key: caK, value: memory, dQuery: dCaQ, dKey: dCaK, dValue: dMemory)
        if let dMemory, let dCaK { Kernels.axpy(1, dCaK, dMemory) }
        if let dQuery { Kernels.axpy(1, dr1, dQuery); Kernels.axpy(1, dCaQ, dQuery) }
        if let dQueryPos {
            let n = Q * C
            for b in 0..<B {
                Kernels.axpy(1, dCaQ.data + b * n, dQueryPos.data, count: n)
                Kernels.axpy(1, dSaQ.data + b * n, dQueryPos.data, count: n)
            }
        }
    }
}
