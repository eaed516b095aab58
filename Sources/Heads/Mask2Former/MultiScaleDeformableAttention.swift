import Foundation
import Numerics
import Layers

/// mmcv's `MultiScaleDeformableAttention` (the pixel decoder's self-attention), without the
/// residual and dropout (the encoder layer adds the residual; dropout is off, as in
/// evaluation and in our deterministic training):
///
///     q = query + pos                                   [B, Q, C]   (the caller adds pos)
///     V = value_proj(value) as [B, S, NH, D]            D = C / NH
///     Δ = sampling_offsets(q) as [B, Q, NH, L, P, 2]    (x, y) offsets in pixels of level l
///     A = softmax_{L·P}(attention_weights(q)) as [B, Q, NH, L, P]
///     loc = ref[b, q, l] + Δ / (W_l, H_l)               ref [B, Q, L, 2] in [0, 1]
///     out = output_proj(DeformableAttentionCore(V, loc, A))
///
/// Backward: the core's ∂V, ∂loc, ∂A; ∂Δ = ∂loc / (W_l, H_l); the softmax backward over the
/// L·P logits of each (b, q, h); then the four Linear backwards (∂q collects the offset and
/// weight projections). The reference points are constants.
///
/// Initialisation (mmcv `init_weights`): sampling_offsets W = 0 and b = the direction of head
/// h (angle 2πh/NH, scaled so the larger of |cos|, |sin| is 1) times (p + 1); attention_weights
/// W = b = 0; value_proj and output_proj Xavier-uniform with zero bias.
/// Backward work buffers come from `scratch` (keys `msda.*`; they live only during `backward`).
/// Parameter names: `value_proj.*`, `sampling_offsets.*`, `attention_weights.*`, `output_proj.*`.
public final class MultiScaleDeformableAttention: Module {
    public let channels: Int, heads: Int, levels: Int, points: Int
    public let valueProj: Linear, samplingOffsets: Linear, attentionWeights: Linear, outputProj: Linear

    private var shapes: [(h: Int, w: Int)] = []
    private var v = Tensor(zeros: [0]), offsets = Tensor(zeros: [0]), attn = Tensor(zeros: [0])
    private var locations = Tensor(zeros: [0]), sampled = Tensor(zeros: [0])
    private var batch = 0, queries = 0, keys = 0
    private let scratch: ScratchArena

    public init(channels: Int = 256, heads: Int = 8, levels: Int = 3, points: Int = 4, scratch: ScratchArena = ScratchArena()) {
        precondition(channels % heads == 0, "MultiScaleDeformableAttention: \(channels) channels over \(heads) heads")
        self.channels = channels; self.heads = heads; self.levels = levels; self.points = points
        self.scratch = scratch
        valueProj = Linear(inputDimensions: channels, outputDimensions: channels)
        samplingOffsets = Linear(inputDimensions: channels, outputDimensions: heads * levels * points * 2)
        attentionWeights = Linear(inputDimensions: channels, outputDimensions: heads * levels * points)
        outputProj = Linear(inputDimensions: channels, outputDimensions: channels)
    }

    public func parameters(prefix: String) -> [NamedParameter] {
        valueProj.parameters(prefix: prefix + "value_proj.") + samplingOffsets.parameters(prefix: prefix + "sampling_offsets.")
            + attentionWeights.parameters(prefix: prefix + "attention_weights.") + outputProj.parameters(prefix: prefix + "output_proj.")
    }

    /// mmcv's initialisation (see the type's comment).
    public func reset(rng: inout RandomGenerator) {
        samplingOffsets.weight.value.zero()
        let b = samplingOffsets.bias!.value.data
        for h in 0..<heads {
            let theta = Double(h) * 2 * Double.pi / Double(heads)
            var cx = Float(cos(theta)), cy = Float(sin(theta))
            let m = Swift.max(abs(cx), abs(cy))
            cx /= m; cy /= m
            for l in 0..<levels {
                for p in 0..<points {
                    let k = ((h * levels + l) * points + p) * 2
                    b[k] = cx * Float(p + 1); b[k + 1] = cy * Float(p + 1)
                }
            }
        }
        attentionWeights.weight.value.zero(); attentionWeights.bias!.value.zero()
        for lin in [valueProj, outputProj] {
            xavierUniform(lin.weight.value, &rng)
            lin.bias!.value.zero()
        }
    }

    /// query [B, Q, C] (position already added), value [B, S, C], reference [B, Q, L, 2],
    /// level shapes (Σ H_l W_l = S) → output [B, Q, C] (written).
    public func forward(query: Tensor, value: Tensor, reference: Tensor, shapes: [(h: Int, w: Int)], into output: Tensor) {
        let (B, Q, C) = (query.shape[0], query.shape[1], channels)
        let S = value.count / (B * C)
        precondition(query.count == B * Q * C && value.count == B * S * C && shapes.count == levels,
                     "MultiScaleDeformableAttention: query \(query.shape), value \(value.shape), \(shapes.count) levels")
        precondition(reference.count == B * Q * levels * 2, "MultiScaleDeformableAttention: reference \(reference.shape)")
        precondition(output.count == B * Q * C, "MultiScaleDeformableAttention: output \(output.shape)")
        let (NH, L, P, D) = (heads, levels, points, channels / heads)
        if batch != B || queries != Q || keys != S {
            v = Tensor(zeros: [B, S, NH, D]); offsets = Tensor(zeros: [B, Q, NH, L, P, 2])
            attn = Tensor(zeros: [B, Q, NH, L, P]); locations = Tensor(zeros: [B, Q, NH, L, P, 2])
            sampled = Tensor(zeros: [B, Q, C])
            batch = B; queries = Q; keys = S
        }
        self.shapes = shapes
        valueProj.forward(value.reshaped([B * S, C]), into: v.reshaped([B * S, C]))
        samplingOffsets.forward(query.reshaped([B * Q, C]), into: offsets.reshaped([B * Q, NH * L * P * 2]))
        attentionWeights.forward(query.reshaped([B * Q, C]), into: attn.reshaped([B * Q, NH * L * P]))
        Kernels.softmaxRows(attn.data, rows: B * Q * NH, cols: L * P)
        let op = offsets.data, lp = locations.data, rp = reference.data
        let invW = shapes.map { 1 / Float($0.w) }, invH = shapes.map { 1 / Float($0.h) }
        Parallel.forEach(B * Q, grain: 64) { range in
            for bq in range {
                for h in 0..<NH {
                    for l in 0..<L {
                        let rx = rp[(bq * L + l) * 2], ry = rp[(bq * L + l) * 2 + 1]
                        for p in 0..<P {
                            let k = (((bq * NH + h) * L + l) * P + p) * 2
                            lp[k] = rx + op[k] * invW[l]
                            lp[k + 1] = ry + op[k + 1] * invH[l]
                        }
                    }
                }
            }
        }
        DeformableAttentionCore.forward(value: v, shapes: shapes, locations: locations, weights: attn, into: sampled)
        outputProj.forward(sampled.reshaped([B * Q, C]), into: output.reshaped([B * Q, C]))
    }

    /// The attention probabilities [B, Q, NH, L, P] and sampling locations [B, Q, NH, L, P, 2]
    /// of the last forward.
    public var lastWeights: Tensor { attn }
    public var lastLocations: Tensor { locations }

    /// Backward of the last forward (same `query`, `value`): accumulates parameter gradients
    /// and, when given, ∂query [B, Q, C] and ∂value [B, S, C].
    public func backward(dOutput: Tensor, query: Tensor, value: Tensor, dQuery: Tensor?, dValue: Tensor?) {
        let (B, Q, S, C) = (batch, queries, keys, channels)
        precondition(B > 0 && query.count == B * Q * C && value.count == B * S * C,
                     "MultiScaleDeformableAttention: backward without a matching forward")
        let (NH, L, P) = (heads, levels, points)
        let dSampled = scratch.zeros("msda.dSampled", [B * Q, C])
        outputProj.backward(dOutput: dOutput.reshaped([B * Q, C]), input: sampled.reshaped([B * Q, C]), dInput: dSampled)
        let dV = scratch.zeros("msda.dV", v.shape), dLoc = scratch.zeros("msda.dLoc", locations.shape)
        let dA = scratch.zeros("msda.dA", attn.shape)
        DeformableAttentionCore.backward(dOutput: dSampled, value: v, shapes: shapes, locations: locations, weights: attn,
                                         dValue: dV, dLocations: dLoc, dWeights: dA)
        // ∂Δ = ∂loc / (W_l, H_l), in place.
        let dl = dLoc.data
        let invW = shapes.map { 1 / Float($0.w) }, invH = shapes.map { 1 / Float($0.h) }
        Parallel.forEach(B * Q * NH, grain: 256) { range in
            for r in range {
                for l in 0..<L {
                    for p in 0..<P {
                        let k = ((r * L + l) * P + p) * 2
                        dl[k] *= invW[l]; dl[k + 1] *= invH[l]
                    }
                }
            }
        }
        // Softmax backward over the L·P logits, in place.
        let dap = dA.data, ap = attn.data, lp = L * P
        Parallel.forEach(B * Q * NH, grain: 256) { range in
            for r in range { Kernels.softmaxRowBackwardInPlace(dap + r * lp, output: ap + r * lp, lp) }
        }
        let q2 = query.reshaped([B * Q, C])
        let dq2 = dQuery?.reshaped([B * Q, C])
        samplingOffsets.backward(dOutput: dLoc.reshaped([B * Q, NH * L * P * 2]), input: q2, dInput: dq2)
        attentionWeights.backward(dOutput: dA.reshaped([B * Q, NH * L * P]), input: q2, dInput: dq2)
        valueProj.backward(dOutput: dV.reshaped([B * S, C]), input: value.reshaped([B * S, C]),
                           dInput: dValue?.reshaped([B * S, C]))
    }
}

/// Xavier/Glorot uniform for a `[out, in]` weight: U(−a, a), a = √(6 / (in + out)).
func xavierUniform(_ w: Tensor, _ rng: inout RandomGenerator, gain: Float = 1) {
    let fanOut = w.shape[0], fanIn = w.count / Swift.max(w.shape[0], 1)
    let a = gain * (6 / Float(fanIn + fanOut)).squareRoot()
    rng.fillUniform(w, -a, a)
}
