import Numerics

/// Multi-head self-attention with a fused qkv projection (timm / DINOv2 `Attention`):
///
///     [q | k | v] = x W_qkvᵀ + b_qkv          x [B, T, C], W_qkv [3C, C] in q, k, v order
///     per batch b and head h (head_dim D = C / NH, columns h·D ..< (h+1)·D of q, k, v):
///       A = softmax(q kᵀ · D^−½)               A [T, T]
///       y_h = A v                              y [B, T, C] (heads side by side)
///     out = y W_projᵀ + b_proj                 W_proj [C, C]
///
/// Backward per (b, h), with g = ∂L/∂y_h:
///
///     dv = Aᵀ g,   dA = g vᵀ,   dS = A ⊙ (dA − rowsum(dA ⊙ A)) · D^−½,
///     dq = dS k,   dk = dSᵀ q
///
/// Caches of the last forward: qkv [B, T, 3C], y [B, T, C] (not with `inputGradientsOnly`:
/// only proj's weight gradient reads it) and (unless `storesProbabilities` is off, then A is
/// recomputed in backward) A [B, NH, T, T]. The products run per (batch, head) with sgemm
/// on strided views of qkv (no transposed copies), the (b, h) pairs spread over `Parallel`
/// workers, each product single-threaded, softmax in place in the worker's [T, T] block.
///
/// When the partition width asks for more work items than there are pairs
/// (`AttentionPartition`: W > 4 and pairs < W), each pair is cut into query blocks and the
/// items are (pair, block): a block's rows of A, y and dq depend on its own query rows
/// only; dk and dv, which sum over all query rows, are written as one partial per block
/// and then added in block order, so the bits depend on W and the shape, not on which
/// worker ran what. At the default width a pair is one item, as before.
///
/// Memory: with an `arena`, the backward work buffers (and y with `inputGradientsOnly`) are
/// borrowed from it; with `cachesInArena` the caches too (for layers whose backward
/// directly follows their own forward, e.g. the backbone's recompute mode). With query
/// blocks the backward also holds the dk and dv partials, [B·NH, blocks, T, D] each (ViT-L
/// at 1025 tokens and W = 64: ≈ 17 MB each).
public final class Attention: InputProjectedLayer {
    public let channels: Int   // C
    public let heads: Int      // NH
    public let headDim: Int    // D
    public let scale: Float    // D^−½
    public let qkv: Linear     // [3C, C]
    public let proj: Linear    // [C, C]
    public var inputProjection: Linear { qkv }
    private var qkvOut = CacheBuffer(), att = CacheBuffer(), y = CacheBuffer()
    private var dY = CacheBuffer(), dQKV = CacheBuffer(), dAtt = CacheBuffer(), probScratch = CacheBuffer()
    private var dKeyPartials = CacheBuffer(), dValuePartials = CacheBuffer()
    /// The caches of the last forward (own buffers or arena views).
    private var qkvCache = Tensor(zeros: [0]), attCache = Tensor(zeros: [0]), yCache = Tensor(zeros: [0])
    private var batch = 0, tokens = 0, probabilitiesStored = false

    /// Lends the work buffers (see the type's documentation); nil: own buffers.
    public var arena: ScratchArena?
    /// Keep the caches in `arena` too (shared with every layer using it).
    public var cachesInArena = false
    /// Only `backwardInput` will follow (frozen weights): y goes to the arena, not the cache.
    public var inputGradientsOnly = false

    /// Whether the forward keeps A [B, NH, T, T] for the backward (default). When false, the
    /// forward uses a per-worker [T, T] scratch and the backward recomputes A from the cached
    /// qkv (one extra q kᵀ GEMM and softmax per head): for ViT-L at 1025 tokens this cuts the
    /// block's attention cache from ~83 MB to ~16 MB.
    public var storesProbabilities = true

    /// EVA02's rotary position embedding, applied to q and k of the patch tokens right after
    /// the qkv projection (the cached qkv holds the rotated q and k); nil for DINOv2 and CLIP.
    public var rotary: RotaryPositionEmbedding?

    public init(channels: Int, heads: Int) {
        precondition(heads > 0 && channels % heads == 0, "Attention: \(channels) channels over \(heads) heads")
        self.channels = channels
        self.heads = heads
        headDim = channels / heads
        scale = 1 / Float(headDim).squareRoot()
        qkv = Linear(inputDimensions: channels, outputDimensions: 3 * channels)
        proj = Linear(inputDimensions: channels, outputDimensions: channels)
    }

    public func parameters(prefix: String) -> [NamedParameter] {
        qkv.parameters(prefix: prefix + "qkv.") + proj.parameters(prefix: prefix + "proj.")
    }

    public func reset(rng: inout RandomGenerator) {
        qkv.reset(rng: &rng)
        proj.reset(rng: &rng)
    }

    /// The attention probabilities of the last forward, [B, NH, T, T] (empty unless
    /// `storesProbabilities`).
    public var attentionProbabilities: Tensor { probabilitiesStored ? attCache : Tensor.empty }

    /// Whether (b, h) pairs run on `Parallel` workers (each GEMM single-threaded).
    private var parallelPairs: Bool { BLAS.threads == 1 && Parallel.threads > 1 }

    /// Runs `body(item, worker, rowsParallel)` over the work items — (b, h) pairs, or (pair,
    /// query block) when `AttentionPartition` cuts the pairs — spread over `workers` Parallel
    /// workers (each with its own scratch index), or serially with row-parallel softmax when
    /// BLAS is multi-threaded.
    ///
    /// Workers take the next item from a shared counter rather than a fixed half each: a
    /// pair is milliseconds of work (ViT-L 512²: 16 pairs of ≈ 6 ms), and with fixed halves
    /// one worker waited for the other ≈ 150–220 ms per ViT-L step. Each item writes only
    /// its own outputs, so the results do not depend on which worker ran it.
    private func forEachItem(_ items: Int, workers: Int, _ body: (Int, Int, Bool) -> Void) {
        if workers > 1 {
            Parallel.forEachDynamic(items, workers: workers) { i, w in body(i, w, false) }
        } else {
            for i in 0..<items { body(i, 0, true) }
        }
    }

    /// A [rows, T] = softmax(q kᵀ · scale) of `rows` query rows of one (b, h) pair (all T
    /// of them, or one query block), into `a`.
    @inline(__always)
    private func probabilities(q: UnsafePointer<Float>, k: UnsafePointer<Float>, into a: UnsafeMutablePointer<Float>,
                               rows: Int, tokens T: Int, rowsParallel: Bool) {
        let ld = 3 * channels
        BLAS.gemm(transposeA: false, transposeB: true, m: rows, n: T, k: headDim, alpha: scale,
                  a: q, lda: ld, b: k, ldb: ld, c: a, ldc: T, whole: true)
        if rowsParallel { Kernels.softmaxRows(a, rows: rows, cols: T) } else {
            for t in 0..<rows { Kernels.softmaxRow(a + t * T, T) }
        }
    }

    /// input [B, T, C] → output [B, T, C] (written; may not alias input).
    public func forward(_ input: Tensor, into output: Tensor) {
        precondition(input.rank == 3 && input.shape[2] == channels, "Attention: input \(input.shape), C = \(channels)")
        precondition(output.count == input.count, "Attention: output \(output.shape) for input \(input.shape)")
        let (B, T, C, NH, D) = (input.shape[0], input.shape[1], channels, heads, headDim)
        batch = B
        tokens = T
        let pairs = B * NH
        let partition = AttentionPartition(pairs: pairs, tokens: T)
        let workers = parallelPairs ? Swift.min(Parallel.threads, pairs * partition.blocks) : 1
        let qkvT = qkvOut.cache(arena, inArena: cachesInArena, "attn.qkv", [B, T, 3 * C])
        // y is read back only by proj's weight gradient.
        let yT = y.cache(arena, inArena: cachesInArena || inputGradientsOnly, "attn.y", [B, T, C])
        let probs: Tensor
        if storesProbabilities {
            probs = att.cache(arena, inArena: cachesInArena, "attn.probabilities", [B, NH, T, T])
        } else {
            att.release()
            probs = probScratch.work(arena, "attn.probabilityScratch", [workers, partition.rowsPerBlock, T])
        }
        qkvCache = qkvT
        yCache = yT
        attCache = storesProbabilities ? probs : Tensor.empty
        qkv.forward(input, into: qkvT)
        rotary?.rotate(qkvT, channels: C)
        probabilitiesStored = storesProbabilities
        let qkvP = qkvT.data, probP = probs.data, yP = yT.data, stores = storesProbabilities
        let blocks = partition.blocks, rowsPerBlock = partition.rowsPerBlock
        // One item per (pair, query block); with one block per pair, per pair.
        forEachItem(pairs * blocks, workers: workers) { item, w, rowsParallel in
            let pair = item / blocks, rows = partition.rows(item % blocks, tokens: T)
            let b = pair / NH, h = pair % NH
            let q = qkvP + b * T * 3 * C + h * D, k = q + C, v = q + 2 * C
            let a = stores ? probP + pair * T * T + rows.lowerBound * T : probP + w * rowsPerBlock * T
            probabilities(q: q + rows.lowerBound * 3 * C, k: k, into: a, rows: rows.count, tokens: T,
                          rowsParallel: rowsParallel)
            // y_h's rows [rows, D] = A v
            BLAS.gemm(transposeA: false, transposeB: false, m: rows.count, n: D, k: T,
                      a: a, lda: T, b: v, ldb: 3 * C, c: yP + (b * T + rows.lowerBound) * C + h * D, ldc: C,
                      whole: true)
        }
        proj.forward(yT, into: output)
    }

    /// Frees the caches and scratch buffers.
    public func releaseCache() {
        qkvOut.release(); att.release(); y.release(); dY.release(); dQKV.release(); dAtt.release()
        probScratch.release(); dKeyPartials.release(); dValuePartials.release()
        qkvCache = Tensor(zeros: [0]); attCache = Tensor(zeros: [0]); yCache = Tensor(zeros: [0])
        probabilitiesStored = false
        batch = 0
        tokens = 0
    }

    /// ∂L/∂[q|k|v] [B, T, 3C] from ∂L/∂out, plus proj's parameter gradients unless frozen.
    public func projectionOutputGradient(dOutput: Tensor, input: Tensor, frozen: Bool) -> Tensor {
        precondition(input.rank == 3 && input.shape[0] == batch && input.shape[1] == tokens && batch > 0,
                     "Attention: backward without a matching forward")
        precondition(dOutput.count == input.count, "Attention: dOutput \(dOutput.shape) for input \(input.shape)")
        let (B, T, C, NH, D) = (batch, tokens, channels, heads, headDim)
        let dYT = dY.work(arena, "attn.dY", [B, T, C]), dQKVT = dQKV.work(arena, "attn.dQKV", [B, T, 3 * C])
        if !frozen { proj.backward(dOutput: dOutput, input: yCache, dInput: nil) }
        proj.inputGradient(dOutput: dOutput, into: dYT, accumulate: false)
        let pairs = B * NH
        let partition = AttentionPartition(pairs: pairs, tokens: T)
        let workers = parallelPairs ? Swift.min(Parallel.threads, pairs * partition.blocks) : 1
        let stores = probabilitiesStored
        let scratch = dAtt.work(arena, "attn.dProbabilities", [workers, partition.rowsPerBlock, T])
        let recomputed = stores ? scratch
            : probScratch.work(arena, "attn.probabilityScratch", [workers, partition.rowsPerBlock, T])
        let qkvP = qkvCache.data, attP = attCache.data, dyP = dYT.data, dP = dQKVT.data
        let s = scale
        let blocks = partition.blocks, rowsPerBlock = partition.rowsPerBlock
        // With query blocks dk and dv sum over every block's rows: each block writes a partial
        // [T, D], added in block order below. With one block per pair they go to dQKV directly.
        let partials = blocks > 1
        let dkParts = partials ? dKeyPartials.work(arena, "attn.dKeyPartials", [pairs, blocks, T, D]).data : dP
        let dvParts = partials ? dValuePartials.work(arena, "attn.dValuePartials", [pairs, blocks, T, D]).data : dP
        forEachItem(pairs * blocks, workers: workers) { item, w, rowsParallel in
            let pair = item / blocks, rows = partition.rows(item % blocks, tokens: T), m = rows.count
            let b = pair / NH, h = pair % NH
            let q = qkvP + b * T * 3 * C + h * D, k = q + C, v = q + 2 * C
            let qBlock = q + rows.lowerBound * 3 * C
            let a: UnsafeMutablePointer<Float>
            if stores {
                a = attP + pair * T * T + rows.lowerBound * T
            } else {
                a = recomputed.data + w * rowsPerBlock * T
                probabilities(q: qBlock, k: k, into: a, rows: m, tokens: T, rowsParallel: rowsParallel)
            }
            let g = dyP + (b * T + rows.lowerBound) * C + h * D
            let dA = scratch.data + w * rowsPerBlock * T
            let dq = dP + (b * T + rows.lowerBound) * 3 * C + h * D
            let (dk, dv, ldk) = partials ? (dkParts + item * T * D, dvParts + item * T * D, D)   // item = pair · blocks + block
                                         : (dq + C, dq + 2 * C, 3 * C)
            // dv [T, D] (+)= A_blkᵀ g_blk
            BLAS.gemm(transposeA: true, transposeB: false, m: T, n: D, k: m,
                      a: a, lda: T, b: g, ldb: C, c: dv, ldc: ldk, whole: true)
            // dA_blk [m, T] = g_blk vᵀ, then the softmax backward (and the score scale) in place
            BLAS.gemm(transposeA: false, transposeB: true, m: m, n: T, k: D,
                      a: g, lda: C, b: v, ldb: 3 * C, c: dA, ldc: T, whole: true)
            if rowsParallel {
                Parallel.forEach(m, grain: Swift.max(1, Kernels.elementGrain / Swift.max(T, 1))) { r in
                    for t in r { Kernels.softmaxRowBackwardInPlace(dA + t * T, output: a + t * T, T, scale: s) }
                }
            } else {
                for t in 0..<m { Kernels.softmaxRowBackwardInPlace(dA + t * T, output: a + t * T, T, scale: s) }
            }
            // dq_blk = dS_blk k (the block's own rows of dq),  dk (+)= dS_blkᵀ q_blk
            BLAS.gemm(transposeA: false, transposeB: false, m: m, n: D, k: T,
                      a: dA, lda: T, b: k, ldb: 3 * C, c: dq, ldc: 3 * C, whole: true)
            BLAS.gemm(transposeA: true, transposeB: false, m: T, n: D, k: m,
                      a: dA, lda: T, b: qBlock, ldb: 3 * C, c: dk, ldc: ldk, whole: true)
        }
        if partials {
            // dk, dv = Σ_blk partials, always block 0 + block 1 + … so that the order of the
            // additions (and the bits) does not depend on how the rows are chunked.
            Parallel.forEach(pairs * T, grain: Swift.max(1, Kernels.elementGrain / Swift.max(2 * blocks * D, 1))) { range in
                for row in range {
                    let pair = row / T, t = row % T
                    let b = pair / NH, h = pair % NH
                    let dk = dP + (b * T + t) * 3 * C + C + h * D, dv = dk + C
                    let first = (pair * blocks * T + t) * D
                    let pk = dkParts + first, pv = dvParts + first
                    for d in 0..<D { dk[d] = pk[d]; dv[d] = pv[d] }
                    for blk in 1..<blocks {
                        let qk = pk + blk * T * D, qv = pv + blk * T * D
                        for d in 0..<D { dk[d] += qk[d]; dv[d] += qv[d] }
                    }
                }
            }
        }
        // Back through the rotation: ∂L/∂(q, k before it) = Rᵀ ∂L/∂(rotated q, k).
        rotary?.rotate(dQKVT, channels: C, inverse: true)
        return dQKVT
    }
}
