import Core
import Foundation
import Layers
import Numerics

/// The Causal-Tune layer (reference §Causal-Tune layer), applied after every block `i` of the frozen backbone.
///
/// Tokens `x ∈ R^{B×T×C}`, `T = P + N`: the `P` cls/register tokens pass through
/// unchanged; the `N = h·w` patch tokens of each image, `X ∈ R^{N×C}` (token `u·w + v`),
/// become
///
///     F   = T(X)                          orthonormal 2-D transform per channel (dct | fft | haar | identity)
///     Q   = M ⊙ F                         band-pass mask M[u, v], the same for every channel
///     S   = softmax(Q T_iᵀ / √C)           over the m tokens, T_i ∈ R^{m×C} (or T_i = A_i B_i)
///     V   = f_t(T_i[1:])                  f_t(y) = y W_tᵀ + b_t, shared by all layers
///     ΔF  = S[:, 1:] · V                  token 0 is a null sink: attended, never a value
///     Z   = ΔF + Q
///     R   = f_d(Z)                        f_d(y) = y W_dᵀ + b_d, shared
///     out = X + s · T⁻¹(R)                 s: one learnable scalar shared by all layers
///         | T⁻¹(Q) + s · T⁻¹(R) = T⁻¹(Q + s R)   with `discardNoncausal`
///
/// Backward, given `dOut` for the patch tokens (`G = T(dOut)`; `T⁻¹ = Tᵀ`, so the adjoint
/// of `T⁻¹` is `T` and that of `T` is `T⁻¹`):
///
///     ds  += ⟨G, R⟩,   dR = s G
///     dW_d += dRᵀ Z,  db_d += Σ_rows dR,  dZ = dR W_d
///     dS[:, 1:] = dZ Vᵀ, dS[:, 0] = 0;   dV = S[:, 1:]ᵀ dZ
///     dL  = S ⊙ (dS − Σ_j S_j dS_j)       (softmax backward, logits L = Q T_iᵀ/√C)
///     dQ  = dZ + dL T_i / √C  (+ G with `discardNoncausal`)
///     dT_i = dLᵀ Q / √C + [0; dV W_t],   dW_t += dVᵀ T_i[1:],  db_t += Σ_rows dV
///     (low rank: dA_i += dT_i B_iᵀ, dB_i += A_iᵀ dT_i)
///     dX  += T⁻¹(M ⊙ dQ)  (+ dOut without `discardNoncausal`)
///
/// Initialisation (as Rein): tokens `U(−v, v)`, `v = √(6 / (3P² + C))` with `P` the patch
/// size; low-rank `A`, `B` as Rein's LoRA tokens, `v = √(6 / (3P² + √(C r)))`; `f_t`, `f_d`
/// weights and biases `U(−1/√C, 1/√C)` (PyTorch's `nn.Linear` default); `s = scale_init`.
/// Drawn from one seeded generator in this order: tokens (or A, then B), W_t, b_t, W_d, b_d.
///
/// Parameter names and loading: `CausalTuneAdapter+Parameters.swift`; the token sets and
/// their gradients: `+Tokens`; the arrays of the feature dump: `+FeatureRecording`.
///
/// Per layer the forward caches `Q`, `S`, `Z`, `R` (and `T_i`, `V`) for the backward; a new
/// forward of the same layer replaces them (the backbone's recompute mode).
public final class CausalTuneAdapter: PEFTAdapter, PEFTTokenLink, Module {
    public let options: CausalTuneOptions
    /// `L`, the number of blocks (one layer of tokens each).
    public let layers: Int
    /// `C`.
    public let channels: Int
    /// `m`.
    public let tokenCount: Int
    /// `r` for low-rank tokens, else nil.
    public let rank: Int?
    public let transformKind: TransformKind
    public let filter: FrequencyFilter

    // Parameters (all with gradients).
    /// `[L, m, C]` (full tokens only).
    public let tokens: Parameter?
    /// `[L, m, r]`, `[L, r, C]` (low-rank only).
    public let tokensA: Parameter?
    public let tokensB: Parameter?
    /// `f_t`, `f_d`: `Linear(C, C)`, shared by all layers.
    public let ft: Linear
    public let fd: Linear
    /// `s`, `[1]`.
    public let scale: Parameter

    var caches: [CausalTuneLayerCache]

    /// With the backbone's recompute mode, every layer's forward is run again right before
    /// its backward, so one cache shared by all layers suffices: set this to keep a single
    /// cache (memory `O(1)` instead of `O(L)` in the number of layers). A backward must then
    /// follow the forward of the same layer.
    public var sharesOneCache = false

    /// The layers whose dump arrays the forward records (`+FeatureRecording`).
    var recording = FeatureRecording()

    private func layerCache(_ layer: Int) -> CausalTuneLayerCache { sharesOneCache ? caches[0] : caches[layer] }
    var transform: SpectralTransform
    var maskValues: [Float]
    // Scratch shared by all layers, each `[B·N, C]` unless noted. The spectrum-domain work
    // array holds `Q + s R` in the forward, `G = T(dOut)` and then `T⁻¹(M ⊙ dQ)` in the backward.
    private var spectrumWork = Tensor(zeros: [0])
    /// `dZ`, then `dQ` (they share storage: dQ = dZ + …).
    private var dMixed = Tensor(zeros: [0])
    /// `dR = s G`.
    private var dProjected = Tensor(zeros: [0])
    /// `dS`, `[B·N, m]`.
    private var dAttention = Tensor(zeros: [0])
    /// `dV`, `[m−1, C]`.
    private let dValues: Tensor
    /// `dT_i`, `[m, C]`.
    private let dKeys: Tensor

    /// A new layer set for `layers` blocks of width `channels`, initialised from `seed`.
    /// `options.method` must not be `.none` (no adapter then; see `PEFTRegistry.make`).
    public convenience init(options: CausalTuneOptions, layers: Int, channels: Int, patchSize: Int, seed: UInt64) throws {
        var rng = RandomGenerator(seed: seed)
        try self.init(options: options, layers: layers, channels: channels, patchSize: patchSize, rng: &rng)
    }

    public init(options: CausalTuneOptions, layers: Int, channels: Int, patchSize: Int, rng: inout RandomGenerator) throws {
        try options.validate()
        if options.method == .none { throw CausalTuneError("model.peft.method is none: there is no Causal-Tune layer to build") }
        precondition(layers > 0 && channels > 0 && patchSize > 0, "CausalTuneAdapter(layers: \(layers), channels: \(channels), patchSize: \(patchSize))")
        self.options = options
        self.layers = layers
        self.channels = channels
        let m = options.tokens
        self.tokenCount = m
        self.rank = options.loraRank
        self.transformKind = options.effectiveTransform
        self.filter = options.effectiveFilter
        let c = channels
        let p2 = Float(patchSize * patchSize)
        if let r = options.loraRank {
            let a = Parameter(zeros: [layers, m, r], requiresGrad: true)
            let b = Parameter(zeros: [layers, r, c], requiresGrad: true)
            let v = (6 / (3 * p2 + (Float(c) * Float(r)).squareRoot())).squareRoot()
            rng.fillUniform(a.value, -v, v)
            rng.fillUniform(b.value, -v, v)
            tokens = nil
            tokensA = a
            tokensB = b
        } else {
            let t = Parameter(zeros: [layers, m, c], requiresGrad: true)
            let v = (6 / (3 * p2 + Float(c))).squareRoot()
            rng.fillUniform(t.value, -v, v)
            tokens = t
            tokensA = nil
            tokensB = nil
        }
        ft = Linear(inputDimensions: c, outputDimensions: c)
        fd = Linear(inputDimensions: c, outputDimensions: c)
        ft.reset(rng: &rng)   // W_t, b_t ~ U(−1/√C, 1/√C)
        fd.reset(rng: &rng)
        ft.setRequiresGrad(true)
        fd.setRequiresGrad(true)
        scale = Parameter(Tensor(shape: [1], values: [options.scaleInit]), requiresGrad: true)
        caches = (0..<layers).map { _ in CausalTuneLayerCache(m: m, c: c) }
        transform = SpectralTransform(kind: options.effectiveTransform, h: 1, w: 1)
        maskValues = [1]
        dValues = Tensor(zeros: [Swift.max(m - 1, 1), c])
        dKeys = Tensor(zeros: [m, c])
    }

    // MARK: grid

    /// The transform and mask for `grid`, rebuilt when the grid changes.
    func prepare(grid: (h: Int, w: Int)) {
        if transform.h == grid.h && transform.w == grid.w { return }
        transform = SpectralTransform(kind: transformKind, h: grid.h, w: grid.w)
        maskValues = filter.mask(for: transform).array
    }

    /// The band-pass mask `M` on the `h×w` coefficient grid, `[h, w]`.
    public func mask(grid: (h: Int, w: Int)) -> Tensor {
        prepare(grid: grid)
        return Tensor(shape: [grid.h, grid.w], values: maskValues)
    }

    /// The transform for `grid` (shared with the layer; not thread-safe).
    public func spectralTransform(grid: (h: Int, w: Int)) -> SpectralTransform {
        prepare(grid: grid)
        return transform
    }

    private func ensureScratch(rows: Int) {
        let n = rows * channels
        if spectrumWork.count < n {
            spectrumWork = Tensor(zeros: [n])
            dMixed = Tensor(zeros: [n])
            dProjected = Tensor(zeros: [n])
        }
        if dAttention.count < rows * tokenCount { dAttention = Tensor(zeros: [rows * tokenCount]) }
    }

    /// Frees every layer's backward cache and the shared scratch (e.g. between training and
    /// evaluation); the next forward reallocates what it needs.
    public func releaseCaches() {
        for cache in caches { cache.release() }
        spectrumWork = Tensor(zeros: [0])
        dMixed = Tensor(zeros: [0])
        dProjected = Tensor(zeros: [0])
        dAttention = Tensor(zeros: [0])
    }

    // MARK: forward

    /// Block `layer`'s output tokens `input [B, T, C]` → `output` (same shape), caching for backward.
    public func forward(layer: Int, input: Tensor, output: Tensor, prefixTokens: Int, grid: (h: Int, w: Int)) {
        let (b, t, c) = shape3(input)
        let n = grid.h * grid.w
        precondition(layer >= 0 && layer < layers, "Causal-Tune layer \(layer) of \(layers)")
        precondition(c == channels && t == prefixTokens + n && output.shape == input.shape,
                     "Causal-Tune forward: input \(input.shape), output \(output.shape), prefix \(prefixTokens), grid \(grid), C \(channels)")
        prepare(grid: grid)
        let rows = b * n
        let m = tokenCount
        let cache = layerCache(layer)
        cache.allocate(rows: rows, channels: channels, tokens: tokenCount)
        ensureScratch(rows: rows)
        let q = cache.masked.data, s = cache.attention.data, z = cache.mixed.data, r = cache.projected.data
        let x = input.data, out = output.data
        let sc = scale.value.data[0]

        // T_i (low rank: A_i B_i) and V = f_t(T_i[1:]).
        let tok = layerTokens(layer, into: cache.keys)
        if m > 1 { ft.forward(cache.keys.rows(1..<m), into: cache.values) }

        // Q = M ⊙ T(X)
        transform.forward(src: x + prefixTokens * c, srcStride: t * c, dst: q, dstStride: n * c, batch: b, channels: c)
        applyMask(q, rows: rows, n: n)

        // S = softmax(Q T_iᵀ / √C)
        BLAS.gemm(transposeA: false, transposeB: true, m: rows, n: m, k: c, alpha: 1 / Float(c).squareRoot(),
                  a: q, lda: c, b: tok, ldb: c, c: s, ldc: m)
        Kernels.softmaxRows(s, rows: rows, cols: m)

        // Z = Q + S[:, 1:] V
        Kernels.copy(q, into: z, count: rows * c)
        BLAS.gemm(transposeA: false, transposeB: false, m: rows, n: c, k: m - 1,
                  a: s + 1, lda: m, b: cache.values.data, ldb: c, beta: 1, c: z, ldc: c)

        // R = f_d(Z) = Z W_dᵀ + b_d
        fd.forward(cache.mixed, into: cache.projected)

        // cls / register tokens pass through.
        for i in 0..<b {
            (out + i * t * c).update(from: x + i * t * c, count: prefixTokens * c)
        }
        let outPatch = out + prefixTokens * c, xPatch = x + prefixTokens * c
        if options.discardNoncausal {
            // out = T⁻¹(Q + s R)
            let wv = spectrumWork.data
            Parallel.forEach(rows * c, grain: 1 << 15) { range in
                for k in range { wv[k] = q[k] + sc * r[k] }
            }
            transform.inverse(src: wv, srcStride: n * c, dst: outPatch, dstStride: t * c, batch: b, channels: c)
        } else {
            // out = X + s T⁻¹(R)
            transform.inverse(src: r, srcStride: n * c, dst: outPatch, dstStride: t * c, batch: b, channels: c)
            for i in 0..<b {
                let o = outPatch + i * t * c, xi = xPatch + i * t * c
                Parallel.forEach(n * c, grain: 1 << 15) { range in
                    for k in range { o[k] = xi[k] + sc * o[k] }
                }
            }
        }
        cache.valid = true
        cache.layer = layer
        if recording.layers.contains(layer) {
            recording.recorded[layer] = makeFeatures(input: input, output: output, prefixTokens: prefixTokens, grid: grid)
        }
    }

    // MARK: backward

    /// Accumulates `∂L/∂input` into `dInput` and the parameter gradients, given `dOutput`.
    public func backward(layer: Int, dOutput: Tensor, dInput: Tensor, prefixTokens: Int, grid: (h: Int, w: Int)) {
        let (b, t, c) = shape3(dOutput)
        let n = grid.h * grid.w
        let cache = layerCache(layer)
        precondition(cache.valid && cache.layer == layer && cache.rows == b * n && dInput.shape == dOutput.shape && t == prefixTokens + n,
                     "Causal-Tune backward of layer \(layer) without a matching forward")
        prepare(grid: grid)
        let rows = b * n
        let m = tokenCount
        ensureScratch(rows: rows)
        let q = cache.masked.data, s = cache.attention.data, r = cache.projected.data
        let tok = cache.keys.data, v = cache.values.data
        let dout = dOutput.data, dx = dInput.data
        let g = spectrumWork.data, dq = dMixed.data, dr = dProjected.data, dS = dAttention.data, dv = dValues.data, dt = dKeys.data
        let sc = scale.value.data[0]
        let invSqrtC = 1 / Float(c).squareRoot()

        // Prefix tokens: identity.
        for i in 0..<b {
            let d = dx + i * t * c, o = dout + i * t * c
            for k in 0..<(prefixTokens * c) { d[k] += o[k] }
        }

        // G = T(dOut) (adjoint of T⁻¹); ds += ⟨G, R⟩; dR = s G.
        transform.forward(src: dout + prefixTokens * c, srcStride: t * c, dst: g, dstStride: n * c, batch: b, channels: c)
        scale.grad!.data[0] += Float(Kernels.dot(g, r, count: rows * c))

        // f_d backward with dR = s G: dW_d += dRᵀ Z, db_d += Σ dR, dZ = dR W_d.
        Parallel.forEach(rows * c, grain: 1 << 15) { range in
            for k in range {
                dr[k] = sc * g[k]
                dq[k] = 0
            }
        }
        let dR = dProjected.rows(0..<(rows * c)).reshaped([rows, c])
        let dZ = dMixed.rows(0..<(rows * c)).reshaped([rows, c])
        fd.backward(dOutput: dR, input: cache.mixed, dInput: dZ)

        // ΔF = S[:, 1:] V: dS[:, 1:] = dZ Vᵀ, dV = S[:, 1:]ᵀ dZ.
        if m > 1 {
            BLAS.gemm(transposeA: false, transposeB: true, m: rows, n: m - 1, k: c,
                      a: dq, lda: c, b: v, ldb: c, c: dS + 1, ldc: m)
            BLAS.gemm(transposeA: true, transposeB: false, m: m - 1, n: c, k: rows,
                      a: s + 1, lda: m, b: dq, ldb: c, c: dv, ldc: c)
        }
        // Softmax backward in place (dS[:, 0] = 0: the null sink is never a value).
        Parallel.forEach(rows, grain: Swift.max(1, 4096 / m)) { range in
            for i in range {
                dS[i * m] = 0
                Kernels.softmaxRowBackwardInPlace(dS + i * m, output: s + i * m, m)
            }
        }

        // dQ = dZ + dL T_i / √C;  dT_i = dLᵀ Q / √C.
        BLAS.gemm(transposeA: false, transposeB: false, m: rows, n: c, k: m, alpha: invSqrtC,
                  a: dS, lda: m, b: tok, ldb: c, beta: 1, c: dq, ldc: c)
        BLAS.gemm(transposeA: true, transposeB: false, m: m, n: c, k: rows, alpha: invSqrtC,
                  a: dS, lda: m, b: q, ldb: c, c: dt, ldc: c)

        // f_t backward: dT_i[1:] += dV W_t, dW_t += dVᵀ T_i[1:], db_t += Σ dV.
        if m > 1 {
            ft.backward(dOutput: dValues.rows(0..<(m - 1)), input: cache.keys.rows(1..<m), dInput: dKeys.rows(1..<m))
        }
        accumulateTokenGradient(layer: layer, dt: UnsafePointer(dt))

        // Discarding the non-causal part routes G straight into Q as well.
        if options.discardNoncausal {
            Parallel.forEach(rows * c, grain: 1 << 15) { range in
                for k in range { dq[k] += g[k] }
            }
        }
        // dF = M ⊙ dQ; dX += T⁻¹(dF) (+ dOut through the residual).
        applyMask(dq, rows: rows, n: n)
        transform.inverse(src: dq, srcStride: n * c, dst: g, dstStride: n * c, batch: b, channels: c)
        let residual = !options.discardNoncausal
        for i in 0..<b {
            let d = dx + i * t * c + prefixTokens * c
            let o = dout + i * t * c + prefixTokens * c
            let gi = g + i * n * c
            Parallel.forEach(n * c, grain: 1 << 15) { range in
                if residual {
                    for k in range { d[k] += gi[k] + o[k] }
                } else {
                    for k in range { d[k] += gi[k] }
                }
            }
        }
    }

    // MARK: pieces

    func shape3(_ x: Tensor) -> (Int, Int, Int) {
        precondition(x.rank == 3, "Causal-Tune expects tokens [B, T, C], got \(x.shape)")
        return (x.shape[0], x.shape[1], x.shape[2])
    }

    /// Multiplies row `p` of every image (token `p = u·w + v`) by `M[p]`, in place.
    func applyMask(_ x: UnsafeMutablePointer<Float>, rows: Int, n: Int) {
        if filter.isIdentity { return }
        let c = channels
        maskValues.withUnsafeBufferPointer { mp in
            let mask = mp.baseAddress!
            Parallel.forEach(rows, grain: Swift.max(1, 16384 / c)) { range in
                for row in range {
                    let f = mask[row % n]
                    let p = x + row * c
                    for k in 0..<c { p[k] *= f }
                }
            }
        }
    }
}
