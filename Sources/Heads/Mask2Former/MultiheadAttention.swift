import Numerics
import Layers

/// `torch.nn.MultiheadAttention` (batch first) with an optional boolean attention mask, the
/// cross- and self-attention of Mask2Former's transformer decoder:
///
///     q = x_q W_qᵀ + b_q   [B, Q, C]     x_q = query + query_pos   (the caller adds positions)
///     k = x_k W_kᵀ + b_k   [B, S, C]     x_k = key + key_pos
///     v = x_v W_vᵀ + b_v   [B, S, C]     x_v = value
///     per batch b and head h (D = C / NH):
///       A = softmax(q_h k_hᵀ / √D + mask)     mask[b, i, j] = −∞ where masked
///       y_h = A v_h
///     out = y W_oᵀ + b_o
///
/// `W_q | W_k | W_v` is PyTorch's `in_proj_weight [3C, C]` (`in_proj_bias [3C]`), `W_o` is
/// `out_proj.weight`. A row whose every key is masked is treated as unmasked (Mask2Former's
/// decoder unmasks such rows before calling, so this only guards against NaN).
/// Backward per (b, h), g = ∂L/∂y_h: `dv = Aᵀ g, dA = g vᵀ, dS = A ⊙ (dA − rowsum(dA ⊙ A)) / √D,
/// dq = dS k, dk = dSᵀ q`, then the projections' backwards.
/// Initialisation: Xavier-uniform in_proj_weight and out_proj.weight, zero biases (PyTorch).
/// Backward work buffers come from `scratch` (keys `mha.*`; they live only during `backward`).
public final class MultiheadAttention: Module {
    public let channels: Int, heads: Int, headDim: Int
    public let inProjWeight: Parameter   // [3C, C]
    public let inProjBias: Parameter     // [3C]
    public let outProj: Linear

    private var q = Tensor(zeros: [0]), k = Tensor(zeros: [0]), v = Tensor(zeros: [0])
    private var att = Tensor(zeros: [0]), y = Tensor(zeros: [0])
    private var batch = 0, queries = 0, keys = 0
    private let scratch: ScratchArena

    public init(channels: Int, heads: Int, scratch: ScratchArena = ScratchArena()) {
        precondition(channels % heads == 0, "MultiheadAttention: \(channels) channels over \(heads) heads")
        self.channels = channels; self.heads = heads; headDim = channels / heads
        self.scratch = scratch
        inProjWeight = Parameter(zeros: [3 * channels, channels])
        inProjBias = Parameter(zeros: [3 * channels])
        outProj = Linear(inputDimensions: channels, outputDimensions: channels)
    }

    public func parameters(prefix: String) -> [NamedParameter] {
        [NamedParameter(name: prefix + "in_proj_weight", parameter: inProjWeight),
         NamedParameter(name: prefix + "in_proj_bias", parameter: inProjBias)] + outProj.parameters(prefix: prefix + "out_proj.")
    }

    public func reset(rng: inout RandomGenerator) {
        xavierUniform(inProjWeight.value, &rng)
        inProjBias.value.zero()
        xavierUniform(outProj.weight.value, &rng)
        outProj.bias!.value.zero()
    }

    /// rows of x [N, C] → out [N, C] = x W[part]ᵀ + b[part] (part 0, 1, 2 = q, k, v).
    private func project(_ x: Tensor, part: Int, into out: Tensor) {
        let C = channels, n = x.count / C
        let b = inProjBias.value.data + part * C, o = out.data
        for r in 0..<n { (o + r * C).update(from: b, count: C) }
        BLAS.gemm(transposeA: false, transposeB: true, m: n, n: C, k: C, a: x.data, lda: C,
                  b: inProjWeight.value.data + part * C * C, ldb: C, beta: 1, c: o, ldc: C)
    }

    /// Backward of `project`: dx += dOut W[part] (when given), dW[part] += dOutᵀ x, db[part] += Σ dOut.
    private func projectBackward(_ dOut: Tensor, input x: Tensor, part: Int, dInput: Tensor?, parameters: Bool) {
        let C = channels, n = x.count / C
        if parameters, let dW = inProjWeight.grad {
            BLAS.gemm(transposeA: true, transposeB: false, m: C, n: C, k: n, a: dOut.data, lda: C, b: x.data, ldb: C,
                      beta: 1, c: dW.data + part * C * C, ldc: C)
        }
        if parameters, let db = inProjBias.grad {
            Kernels.accumulateColumnSums(dOut.data, rows: n, cols: C, into: db.data + part * C)
        }
        if let dx = dInput {
            BLAS.gemm(transposeA: false, transposeB: false, m: n, n: C, k: C, a: dOut.data, lda: C,
                      b: inProjWeight.value.data + part * C * C, ldb: C, beta: 1, c: dx.data, ldc: C)
        }
    }

    /// query [B, Q, C], key and value [B, S, C], mask [B, Q, S] (true = may not attend) or nil
    /// → output [B, Q, C] (written).
    public func forward(query: Tensor, key: Tensor, value: Tensor, mask: [Bool]?, into output: Tensor) {
        let C = channels, B = query.shape[0], Q = query.count / (B * C), S = key.count / (B * C)
        precondition(query.count == B * Q * C && key.count == B * S * C && value.count == key.count && output.count == query.count,
                     "MultiheadAttention: query \(query.shape), key \(key.shape), value \(value.shape)")
        if let mask { precondition(mask.count == B * Q * S, "MultiheadAttention: mask of \(mask.count) for [\(B), \(Q), \(S)]") }
        let NH = heads, D = headDim
        if batch != B || queries != Q || keys != S {
            q = Tensor(zeros: [B, Q, C]); k = Tensor(zeros: [B, S, C]); v = Tensor(zeros: [B, S, C])
            att = Tensor(zeros: [B, NH, Q, S]); y = Tensor(zeros: [B, Q, C])
            batch = B; queries = Q; keys = S
        }
        project(query, part: 0, into: q); project(key, part: 1, into: k); project(value, part: 2, into: v)
        let scale = 1 / Float(D).squareRoot()
        let qp = q.data, kp = k.data, vp = v.data, ap = att.data, yp = y.data
        mask?.withUnsafeBufferPointer { mp in
            self.attend(B: B, Q: Q, S: S, scale: scale, qp: qp, kp: kp, vp: vp, ap: ap, yp: yp, mask: mp.baseAddress)
        } ?? attend(B: B, Q: Q, S: S, scale: scale, qp: qp, kp: kp, vp: vp, ap: ap, yp: yp, mask: nil)
        outProj.forward(y.reshaped([B * Q, C]), into: output.reshaped([B * Q, C]))
    }

    private func attend(B: Int, Q: Int, S: Int, scale: Float, qp: UnsafeMutablePointer<Float>, kp: UnsafeMutablePointer<Float>,
                        vp: UnsafeMutablePointer<Float>, ap: UnsafeMutablePointer<Float>, yp: UnsafeMutablePointer<Float>,
                        mask: UnsafePointer<Bool>?) {
        let NH = heads, D = headDim, C = channels
        Parallel.forEach(B * NH) { range in
            for pair in range {
                let b = pair / NH, h = pair % NH
                let a = ap + pair * Q * S
                BLAS.gemm(transposeA: false, transposeB: true, m: Q, n: S, k: D, alpha: scale,
                          a: qp + b * Q * C + h * D, lda: C, b: kp + b * S * C + h * D, ldb: C, c: a, ldc: S)
                for i in 0..<Q {
                    let row = a + i * S
                    if let mask {
                        let m = mask + (b * Q + i) * S
                        var any = false
                        for j in 0..<S where !m[j] { any = true; break }
                        if any { for j in 0..<S where m[j] { row[j] = -.infinity } }
                    }
                    Kernels.softmaxRow(row, S)
                }
                BLAS.gemm(transposeA: false, transposeB: false, m: Q, n: D, k: S, a: a, lda: S,
                          b: vp + b * S * C + h * D, ldb: C, c: yp + b * Q * C + h * D, ldc: C)
            }
        }
    }

    /// The probabilities A [B, NH, Q, S] of the last forward.
    public var attentionProbabilities: Tensor { att }

    /// Backward of the last forward (same inputs): accumulates parameter gradients (unless
    /// `parameters` is false) and ∂query, ∂key, ∂value where given (they may be the same
    /// tensor when the inputs were).
    public func backward(dOutput: Tensor, query: Tensor, key: Tensor, value: Tensor,
                         dQuery: Tensor?, dKey: Tensor?, dValue: Tensor?, parameters: Bool = true) {
        let (B, Q, S, C, NH, D) = (batch, queries, keys, channels, heads, headDim)
        precondition(B > 0 && query.count == B * Q * C && key.count == B * S * C, "MultiheadAttention: backward without a matching forward")
        let dY = scratch.zeros("mha.dY", [B * Q, C])
        if parameters { outProj.backward(dOutput: dOutput.reshaped([B * Q, C]), input: y.reshaped([B * Q, C]), dInput: dY) } else {
            outProj.backwardInput(dOutput: dOutput.reshaped([B * Q, C]), dInput: dY)
        }
        let dq = scratch.zeros("mha.dq", [B, Q, C]), dk = scratch.zeros("mha.dk", [B, S, C])
        let dv = scratch.zeros("mha.dv", [B, S, C])
        let scale = 1 / Float(D).squareRoot()
        let qp = q.data, kp = k.data, vp = v.data, ap = att.data, gp = dY.data
        let dqp = dq.data, dkp = dk.data, dvp = dv.data
        let workers = Swift.min(Parallel.threads, B * NH)
        let dAs = scratch.zeros("mha.dA", [Swift.max(workers, 1), Q * S])
        let chunk = (B * NH + workers - 1) / Swift.max(workers, 1)
        Parallel.forEach(workers) { wr in
            for w in wr {
                let dA = dAs.data + w * Q * S
                for pair in (w * chunk)..<Swift.min(B * NH, (w + 1) * chunk) {
                    let b = pair / NH, h = pair % NH
                    let a = ap + pair * Q * S
                    let g = gp + b * Q * C + h * D
                    let qh = qp + b * Q * C + h * D, kh = kp + b * S * C + h * D, vh = vp + b * S * C + h * D
                    // dv = Aᵀ g
                    BLAS.gemm(transposeA: true, transposeB: false, m: S, n: D, k: Q, a: a, lda: S, b: g, ldb: C,
                              c: dvp + b * S * C + h * D, ldc: C)
                    // dA = g vᵀ → dS in place
                    BLAS.gemm(transposeA: false, transposeB: true, m: Q, n: S, k: D, a: g, lda: C, b: vh, ldb: C,
                              c: dA, ldc: S)
                    for i in 0..<Q { Kernels.softmaxRowBackwardInPlace(dA + i * S, output: a + i * S, S, scale: scale) }
                    BLAS.gemm(transposeA: false, transposeB: false, m: Q, n: D, k: S, a: dA, lda: S, b: kh, ldb: C,
                              c: dqp + b * Q * C + h * D, ldc: C)
                    BLAS.gemm(transposeA: true, transposeB: false, m: S, n: D, k: Q, a: dA, lda: S, b: qh, ldb: C,
                              c: dkp + b * S * C + h * D, ldc: C)
                }
            }
        }
        projectBackward(dq, input: query, part: 0, dInput: dQuery, parameters: parameters)
        projectBackward(dk, input: key, part: 1, dInput: dKey, parameters: parameters)
        projectBackward(dv, input: value, part: 2, dInput: dValue, parameters: parameters)
    }
}
