import Core
import Foundation
import HDF5
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
/// Parameters (reference §Files names and PyTorch layouts, from `parameters(prefix: "peft/")`):
/// `peft/tokens [L, m, C]` (or `peft/tokens_a [L, m, r]`, `peft/tokens_b [L, r, C]`),
/// `peft/f_t/weight [C, C]`, `peft/f_t/bias [C]`, `peft/f_d/weight [C, C]`,
/// `peft/f_d/bias [C]`, `peft/scale [1]` — all with gradients.
///
/// Per layer the forward caches `Q`, `S`, `Z`, `R` (and `T_i`, `V`) for the backward; a new
/// forward of the same layer replaces them (the backbone's recompute mode).
public final class CausalTuneAdapter: BlockAdapter, Module {
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

    /// What one layer's forward keeps for its backward.
    final class LayerCache {
        var rows = 0
        var q = Tensor(zeros: [0])      // [B·N, C]  Q = M ⊙ T(X)
        var s = Tensor(zeros: [0])      // [B·N, m]  softmax weights
        var z = Tensor(zeros: [0])      // [B·N, C]  Z = ΔF + Q
        var r = Tensor(zeros: [0])      // [B·N, C]  R = f_d(Z)
        var tok: Tensor                 // [m, C]    T_i (materialised A_i B_i for low rank)
        var v: Tensor                   // [m−1, C]  V = f_t(T_i[1:])
        var valid = false
        var layer = -1                  // the layer whose forward filled it
        init(m: Int, c: Int) {
            tok = Tensor(zeros: [m, c])
            v = Tensor(zeros: [Swift.max(m - 1, 0), c])
        }
    }
    private var caches: [LayerCache]

    /// With the backbone's recompute mode, every layer's forward is run again right before
    /// its backward, so one cache shared by all layers suffices: set this to keep a single
    /// cache (memory `O(1)` instead of `O(L)` in the number of layers). A backward must then
    /// follow the forward of the same layer.
    public var sharesOneCache = false

    private func layerCache(_ layer: Int) -> LayerCache { sharesOneCache ? caches[0] : caches[layer] }
    private var transform: SpectralTransform
    private var maskValues: [Float]
    // Scratch shared by all layers: three [B·N, C] work buffers, dS [B·N, m], dV [m−1, C], dT [m, C].
    private var work1 = Tensor(zeros: [0])
    private var work2 = Tensor(zeros: [0])
    private var work3 = Tensor(zeros: [0])
    private var dsBuf = Tensor(zeros: [0])
    private let dvBuf: Tensor
    private let dtBuf: Tensor

    /// A new layer set for `layers` blocks of width `channels`, initialised from `seed`.
    /// `options.method` must not be `.none` (no adapter then; see `make`).
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
        caches = (0..<layers).map { _ in LayerCache(m: m, c: c) }
        transform = SpectralTransform(kind: options.effectiveTransform, h: 1, w: 1)
        maskValues = [1]
        dvBuf = Tensor(zeros: [Swift.max(m - 1, 1), c])
        dtBuf = Tensor(zeros: [m, c])
    }

    /// The adapter for `options`, or nil for `method: none`.
    public static func make(options: CausalTuneOptions, layers: Int, channels: Int, patchSize: Int,
                            seed: UInt64) throws -> CausalTuneAdapter? {
        if options.method == .none { try options.validate(); return nil }
        return try CausalTuneAdapter(options: options, layers: layers, channels: channels, patchSize: patchSize, seed: seed)
    }

    // MARK: parameters

    /// The reference §Files prefix of every Causal-Tune parameter.
    public static let parameterPrefix = "peft/"

    /// The trainable parameters in reference §Files order; with `prefix: "peft/"` (or
    /// `trainableParameters`) the names are the checkpoint names.
    public func parameters(prefix: String) -> [NamedParameter] {
        var list: [NamedParameter] = []
        if let t = tokens { list.append(NamedParameter(name: prefix + "tokens", parameter: t)) }
        if let a = tokensA, let b = tokensB {
            list.append(NamedParameter(name: prefix + "tokens_a", parameter: a))
            list.append(NamedParameter(name: prefix + "tokens_b", parameter: b))
        }
        list += ft.parameters(prefix: prefix + "f_t/")
        list += fd.parameters(prefix: prefix + "f_d/")
        list.append(NamedParameter(name: prefix + "scale", parameter: scale))
        return list
    }

    /// `parameters(prefix: "peft/")`: reference §Files names (`peft/tokens`, `peft/f_t/weight`, …).
    public var trainableParameters: [NamedParameter] { parameters(prefix: CausalTuneAdapter.parameterPrefix) }

    /// Copies parameter values from `lookup(name)` (e.g. a checkpoint's `/params/<name>`).
    /// Throws a `CausalTuneError` naming `source` and the parameter when one is missing or
    /// has the wrong shape. Invalidates the layer caches.
    public func loadParameters(from source: String, _ lookup: (String) throws -> Tensor?) throws {
        for p in trainableParameters {
            let value = p.parameter.value
            guard let t = try lookup(p.name) else {
                throw CausalTuneError("\(source): missing parameter \(p.name) \(value.shape)")
            }
            // A scalar stored as shape [] (PyTorch 0-d) is accepted for `peft/scale`.
            guard t.shape == value.shape || (t.count == value.count && value.count == 1) else {
                throw CausalTuneError("\(source): parameter \(p.name) has shape \(t.shape), expected \(value.shape)")
            }
            value.copy(from: t)
        }
        for c in caches { c.valid = false }
    }

    /// Loads `/params/peft/*` from a reference §Files checkpoint (HDF5); nothing else of the file
    /// is needed. A missing or misshapen parameter is one error naming the file and the name.
    public func loadCheckpoint(_ path: String) throws {
        let file = try HDF5File.open(path)
        defer { try? file.close() }
        try loadParameters(from: path) { name in
            let objectPath = "params/" + name
            return file.isDataset(objectPath) ? try file.readTensor(objectPath) : nil
        }
    }

    // MARK: grid

    /// The transform and mask for `grid`, rebuilt when the grid changes.
    private func prepare(grid: (h: Int, w: Int)) {
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
        if work1.count < n {
            work1 = Tensor(zeros: [n])
            work2 = Tensor(zeros: [n])
            work3 = Tensor(zeros: [n])
        }
        if dsBuf.count < rows * tokenCount { dsBuf = Tensor(zeros: [rows * tokenCount]) }
    }

    /// Frees every layer's backward cache and the shared scratch (e.g. between training and
    /// evaluation); the next forward reallocates what it needs.
    public func releaseCaches() {
        for cache in caches {
            cache.rows = 0
            cache.q = Tensor(zeros: [0])
            cache.s = Tensor(zeros: [0])
            cache.z = Tensor(zeros: [0])
            cache.r = Tensor(zeros: [0])
            cache.valid = false
        }
        work1 = Tensor(zeros: [0])
        work2 = Tensor(zeros: [0])
        work3 = Tensor(zeros: [0])
        dsBuf = Tensor(zeros: [0])
    }

    private func ensureCache(_ cache: LayerCache, rows: Int) {
        if cache.rows == rows { return }
        let c = channels
        cache.q = Tensor(zeros: [rows, c])
        cache.s = Tensor(zeros: [rows, tokenCount])
        cache.z = Tensor(zeros: [rows, c])
        cache.r = Tensor(zeros: [rows, c])
        cache.rows = rows
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
        ensureCache(cache, rows: rows)
        ensureScratch(rows: rows)
        let q = cache.q.data, s = cache.s.data, z = cache.z.data, r = cache.r.data
        let x = input.data, out = output.data
        let sc = scale.value.data[0]

        // T_i (low rank: A_i B_i) and V = f_t(T_i[1:]).
        let tok = layerTokens(layer, into: cache.tok)
        if m > 1 { ft.forward(cache.tok.rows(1..<m), into: cache.v) }

        // Q = M ⊙ T(X)
        transform.forward(src: x + prefixTokens * c, srcStride: t * c, dst: q, dstStride: n * c, batch: b, channels: c)
        applyMask(q, rows: rows, n: n)

        // S = softmax(Q T_iᵀ / √C)
        BLAS.gemm(transposeA: false, transposeB: true, m: rows, n: m, k: c, alpha: 1 / Float(c).squareRoot(),
                  a: q, lda: c, b: tok, ldb: c, c: s, ldc: m)
        Kernels.softmaxRows(s, rows: rows, cols: m)

        // Z = Q + S[:, 1:] V
        z.update(from: q, count: rows * c)
        BLAS.gemm(transposeA: false, transposeB: false, m: rows, n: c, k: m - 1,
                  a: s + 1, lda: m, b: cache.v.data, ldb: c, beta: 1, c: z, ldc: c)

        // R = f_d(Z) = Z W_dᵀ + b_d
        fd.forward(cache.z, into: cache.r)

        // cls / register tokens pass through.
        for i in 0..<b {
            (out + i * t * c).update(from: x + i * t * c, count: prefixTokens * c)
        }
        let outPatch = out + prefixTokens * c, xPatch = x + prefixTokens * c
        if options.discardNoncausal {
            // out = T⁻¹(Q + s R)
            let wv = work1.data
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
        if recordFeatures.contains(layer) {
            recordedFeatures[layer] = makeFeatures(input: input, output: output, prefixTokens: prefixTokens, grid: grid)
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
        let q = cache.q.data, s = cache.s.data, r = cache.r.data
        let tok = cache.tok.data, v = cache.v.data
        let dout = dOutput.data, dx = dInput.data
        let g = work1.data, dq = work2.data, dr = work3.data, dS = dsBuf.data, dv = dvBuf.data, dt = dtBuf.data
        let sc = scale.value.data[0]
        let invSqrtC = 1 / Float(c).squareRoot()

        // Prefix tokens: identity.
        for i in 0..<b {
            let d = dx + i * t * c, o = dout + i * t * c
            for k in 0..<(prefixTokens * c) { d[k] += o[k] }
        }

        // G = T(dOut) (adjoint of T⁻¹); ds += ⟨G, R⟩; dR = s G.
        transform.forward(src: dout + prefixTokens * c, srcStride: t * c, dst: g, dstStride: n * c, batch: b, channels: c)
        scale.grad!.data[0] += Float(dot(UnsafePointer(g), UnsafePointer(r), count: rows * c))

        // f_d backward with dR = s G: dW_d += dRᵀ Z, db_d += Σ dR, dZ = dR W_d.
        Parallel.forEach(rows * c, grain: 1 << 15) { range in
            for k in range {
                dr[k] = sc * g[k]
                dq[k] = 0
            }
        }
        let dR = work3.rows(0..<(rows * c)).reshaped([rows, c])
        let dZ = work2.rows(0..<(rows * c)).reshaped([rows, c])
        fd.backward(dOutput: dR, input: cache.z, dInput: dZ)

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
            ft.backward(dOutput: dvBuf.rows(0..<(m - 1)), input: cache.tok.rows(1..<m), dInput: dtBuf.rows(1..<m))
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

    // MARK: all layers' tokens (Rein's token → query link of the Mask2Former head)

    /// Writes every layer's tokens `T_i` into `out [L, m, C]` (`A_i B_i` for low rank).
    public func allTokens(into out: Tensor) {
        precondition(out.shape == [layers, tokenCount, channels], "allTokens: \(out.shape), expected [\(layers), \(tokenCount), \(channels)]")
        for l in 0..<layers { _ = layerTokens(l, into: out.slice(l)) }
    }

    /// Accumulates `∂L/∂T [L, m, C]` (from a consumer of `allTokens`, e.g. the head's query
    /// link) into the token gradients (`dA_i += dT_i B_iᵀ`, `dB_i += A_iᵀ dT_i` for low rank).
    public func accumulateAllTokensGradient(_ dTokens: Tensor) {
        precondition(dTokens.shape == [layers, tokenCount, channels], "accumulateAllTokensGradient: \(dTokens.shape)")
        for l in 0..<layers {
            accumulateTokenGradient(layer: l, dt: UnsafePointer(dTokens.data + l * tokenCount * channels))
        }
    }

    // MARK: feature dump

    /// The layers whose forward also records their dump arrays (`recordedFeatures`); empty
    /// (the default) costs nothing. For `causal-tune features`.
    public var recordFeatures: Set<Int> = [] {
        didSet { recordedFeatures = recordedFeatures.filter { recordFeatures.contains($0.key) } }
    }

    /// The dump arrays of the last forward of every layer in `recordFeatures`.
    public private(set) var recordedFeatures: [Int: CausalTuneFeatures] = [:]

    /// Block `layer`'s features for the feature dump (reference §Files), computed from the block's
    /// output tokens `input [B, T, C]` with the current parameters. Runs the layer's
    /// forward (replacing its cache). Maps are channel-first `[B, C, h, w]`.
    public func features(layer: Int, input: Tensor, prefixTokens: Int, grid: (h: Int, w: Int)) -> CausalTuneFeatures {
        let output = Tensor(zeros: input.shape)
        forward(layer: layer, input: input, output: output, prefixTokens: prefixTokens, grid: grid)
        return recordedFeatures[layer] ?? makeFeatures(input: input, output: output, prefixTokens: prefixTokens, grid: grid)
    }

    /// The dump arrays from a layer's input and output tokens.
    private func makeFeatures(input: Tensor, output: Tensor, prefixTokens: Int, grid: (h: Int, w: Int)) -> CausalTuneFeatures {
        let (b, t, c) = shape3(input)
        let n = grid.h * grid.w
        let spectrumTokens = Tensor(zeros: [b, n, c])
        transform.forward(src: input.data + prefixTokens * c, srcStride: t * c, dst: spectrumTokens.data,
                          dstStride: n * c, batch: b, channels: c)
        let causalTokens = spectrumTokens.clone()
        applyMask(causalTokens.data, rows: b * n, n: n)
        let energy = bandEnergy(spectrum: spectrumTokens, grid: grid)
        return CausalTuneFeatures(
            spatial: channelFirst(input.data + prefixTokens * c, stride: t * c, batch: b, n: n, c: c, grid: grid),
            spectrum: channelFirst(spectrumTokens.data, stride: n * c, batch: b, n: n, c: c, grid: grid),
            causal: channelFirst(causalTokens.data, stride: n * c, batch: b, n: n, c: c, grid: grid),
            refined: channelFirst(output.data + prefixTokens * c, stride: t * c, batch: b, n: n, c: c, grid: grid),
            bandEnergy: energy,
            mask: Tensor(shape: [grid.h, grid.w], values: maskValues))
    }

    /// `[B, 3]` energy fractions (low, causal, high) of `spectrum [B, N, C]` (token-major):
    /// `Σ_{u,v,c} w_band(ρ_uv) F²  /  Σ F²` with the band weights of `FrequencyFilter.bandWeights`.
    public func bandEnergy(spectrum: Tensor, grid: (h: Int, w: Int)) -> Tensor {
        prepare(grid: grid)
        let n = grid.h * grid.w
        let c = spectrum.shape.last ?? 1
        let b = spectrum.count / (n * c)
        let rho = transform.radialFrequency()
        let weights = rho.map { filter.bandWeights($0) }
        let out = Tensor(zeros: [b, 3])
        let f = spectrum.data
        for i in 0..<b {
            var low = 0.0, causal = 0.0, high = 0.0, total = 0.0
            for p in 0..<n {
                let row = f + (i * n + p) * c
                var e = 0.0
                for k in 0..<c { e += Double(row[k]) * Double(row[k]) }
                low += weights[p].low * e
                causal += weights[p].causal * e
                high += weights[p].high * e
                total += e
            }
            if total > 0 {
                out.data[i * 3] = Float(low / total)
                out.data[i * 3 + 1] = Float(causal / total)
                out.data[i * 3 + 2] = Float(high / total)
            }
        }
        return out
    }

    // MARK: pieces

    private func shape3(_ x: Tensor) -> (Int, Int, Int) {
        precondition(x.rank == 3, "Causal-Tune expects tokens [B, T, C], got \(x.shape)")
        return (x.shape[0], x.shape[1], x.shape[2])
    }

    /// `T_i`: a pointer into `peft/tokens`, or `A_i B_i` written into `scratch` for low rank.
    private func layerTokens(_ layer: Int, into scratch: Tensor) -> UnsafeMutablePointer<Float> {
        let m = tokenCount, c = channels
        if let t = tokens?.value {
            scratch.data.update(from: t.data + layer * m * c, count: m * c)
            return scratch.data
        }
        let r = rank!, a = tokensA!.value, bm = tokensB!.value
        BLAS.gemm(transposeA: false, transposeB: false, m: m, n: c, k: r,
                  a: a.data + layer * m * r, lda: r, b: bm.data + layer * r * c, ldb: c,
                  c: scratch.data, ldc: c)
        return scratch.data
    }

    private func accumulateTokenGradient(layer: Int, dt: UnsafePointer<Float>) {
        let m = tokenCount, c = channels
        if let g = tokens?.grad {
            let dst = g.data + layer * m * c
            for k in 0..<(m * c) { dst[k] += dt[k] }
            return
        }
        let r = rank!
        // dA_i += dT_i B_iᵀ  ([m, C]·[C, r]);  dB_i += A_iᵀ dT_i  ([r, m]·[m, C]).
        BLAS.gemm(transposeA: false, transposeB: true, m: m, n: r, k: c,
                  a: dt, lda: c, b: tokensB!.value.data + layer * r * c, ldb: c,
                  beta: 1, c: tokensA!.grad!.data + layer * m * r, ldc: r)
        BLAS.gemm(transposeA: true, transposeB: false, m: r, n: c, k: m,
                  a: tokensA!.value.data + layer * m * r, lda: r, b: dt, ldb: c,
                  beta: 1, c: tokensB!.grad!.data + layer * r * c, ldc: c)
    }

    /// Multiplies row `p` of every image (token `p = u·w + v`) by `M[p]`, in place.
    private func applyMask(_ x: UnsafeMutablePointer<Float>, rows: Int, n: Int) {
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

    /// `Σ_k a[k] b[k]` in double precision, split across cores.
    private func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> Double {
        let blocks = Swift.max(1, Swift.min(64, count / 4096))
        let partial = UnsafeMutablePointer<Double>.allocate(capacity: blocks)
        defer { partial.deallocate() }
        let per = (count + blocks - 1) / blocks
        Parallel.forEach(blocks) { range in
            for blk in range {
                let lo = blk * per, hi = Swift.min(count, lo + per)
                var acc = 0.0
                var k = lo
                while k < hi {
                    // Float partial sums over short runs, double across runs.
                    let end = Swift.min(hi, k + 256)
                    var f: Float = 0
                    while k < end { f += a[k] * b[k]; k += 1 }
                    acc += Double(f)
                }
                partial[blk] = acc
            }
        }
        var total = 0.0
        for blk in 0..<blocks { total += partial[blk] }
        return total
    }

    /// `[B, N, C]` token-major (image stride `stride`) → `[B, C, h, w]` channel-first.
    private func channelFirst(_ x: UnsafePointer<Float>, stride: Int, batch: Int, n: Int, c: Int,
                              grid: (h: Int, w: Int)) -> Tensor {
        let out = Tensor(zeros: [batch, c, grid.h, grid.w])
        let o = out.data
        for i in 0..<batch {
            let src = x + i * stride
            let dst = o + i * c * n
            Parallel.forEach(c, grain: 16) { range in
                for ch in range {
                    for p in 0..<n { dst[ch * n + p] = src[p * c + ch] }
                }
            }
        }
        return out
    }
}

/// One layer's arrays for the feature dump (reference §Files); maps `[B, C, h, w]`.
public struct CausalTuneFeatures {
    /// Patch tokens after the block, before PEFT.
    public let spatial: Tensor
    /// `T(spatial)`.
    public let spectrum: Tensor
    /// `M ⊙ spectrum`.
    public let causal: Tensor
    /// Patch tokens after PEFT (the input of the next block).
    public let refined: Tensor
    /// `[B, 3]`: the energy fractions low / causal / high (see `FrequencyFilter`).
    public let bandEnergy: Tensor
    /// `[h, w]`: the mask `M`.
    public let mask: Tensor
}
