import Numerics
import Layers

/// The `mask2former` decode head behind the trainer's `DecodeHead` protocol: Rein's
/// multi-scale features from the ViT, then `Mask2FormerHead`.
///
///     maps_j = features_j [B, h·w, C] as [B, C, h, w]          (j over out_indices, 4 of them)
///     strides 4, 8, 16, 32 = bilinear ×4 (maps₀), ×2 (maps₁), maps₂, ×0.5 (maps₃)
///                            (`F.interpolate(scale_factor=…, mode="bilinear", align_corners=False)`)
///     predictions = Mask2FormerHead(those maps, linkTokens)
///
/// With the link (the default), the PEFT tokens of all layers (`linkTokens`, `[L, Q, C]`, e.g.
/// from `CausalTuneAdapter.allTokens`) must be set before every forward; after `backwardLoss` their
/// gradient is in `linkTokensGradient` (accumulated; the caller hands it to
/// `accumulateAllTokensGradient` and zeroes it).
///
/// Loss normalisation (data parallel, gradients summed over ranks): `lossNormalizer` is this
/// rank's number of target masks; with the global count M the mask and dice terms use
/// max(1, M), and the classification term the global Σ w = 0.1·Q·globalBatch + 0.9·M (exact
/// for one process; mmdet averages a per-rank Σ w instead). `forwardLoss` returns
/// `sum = loss · max(1, M)`, `normalizer = max(1, M)`, so `terms.loss` is this rank's loss.
/// Parameter names: `head/` + the module names of `Mask2FormerHead`.
public final class Mask2FormerDecodeHead: DecodeHead {
    public let type = "mask2former"
    public let outIndices: [Int]
    public var numClasses: Int { head.numClasses }
    public let head: Mask2FormerHead
    /// The global batch size (`train.batch_size`), for the classification normaliser.
    public var globalBatchSize: Int
    /// PEFT tokens of all layers [L, Q, C]; required before a forward.
    public var linkTokens: Tensor?
    /// ∂L/∂linkTokens, accumulated by `backwardLoss`.
    public private(set) var linkTokensGradient = Tensor(zeros: [0])
    /// The point-sampling generator used when `pointSeeds` is not set (tests, benchmarks).
    public var rng: RandomGenerator
    /// Seeds of the next `forwardLoss`'s point sampling, one per image of the batch: image b
    /// draws its matching and importance points from `RandomGenerator(seed: pointSeeds[b])`.
    /// The trainer derives them from its checkpointed rng state, the step and the image's
    /// slot in the global batch, so a resumed run and any world size draw the same points.
    /// Consumed (reset to nil) by `forwardLoss`; nil draws from `rng`.
    public var pointSeeds: [UInt64]?

    private var maps: [Tensor] = [], scaled: [Tensor] = []
    /// The storage behind `maps` and `scaled` (the pixel decoder's backward reads them), reused
    /// from step to step; backward work buffers come from `scratch`.
    private var mapBuffers = [CacheBuffer](repeating: CacheBuffer(), count: 4)
    private var scaledBuffers = [CacheBuffer](repeating: CacheBuffer(), count: 4)
    private let scratch = ScratchArena()
    private static let scaledGradientKeys = ["dh.dScaled0", "dh.dScaled1", "dh.dScaled2", "dh.dScaled3"]
    private var batch = 0, grid = (h: 0, w: 0)
    private let factors: [Double] = [4, 2, 1, 0.5]

    /// `linkToTokens: false` (PEFT `method: none`) learns the queries instead (plain Mask2Former).
    public init(channels: Int, numClasses: Int, outIndices: [Int], globalBatchSize: Int, rng: inout RandomGenerator,
                headChannels: Int = 256, queries: Int = 100, linkToTokens: Bool = true) {
        precondition(outIndices.count == 4, "Mask2FormerDecodeHead: 4 out_indices, got \(outIndices)")
        self.outIndices = outIndices
        self.globalBatchSize = globalBatchSize
        head = Mask2FormerHead(inputChannels: channels, backboneChannels: linkToTokens ? channels : nil, numClasses: numClasses,
                               channels: headChannels, queries: queries)
        head.reset(rng: &rng)
        head.setRequiresGrad(true)
        self.rng = rng.split()
    }

    public var parameters: [NamedParameter] { head.parameters(prefix: "head/") }

    public func zeroGradients() { head.zeroGrad() }

    /// Target masks of one image: the classes < K present.
    private func targets(_ labels: LabelBatch) -> [MaskTargets] {
        let hw = labels.height * labels.width
        return (0..<labels.batch).map { b in
            labels.values[(b * hw)..<((b + 1) * hw)].withUnsafeBufferPointer {
                MaskTargets(labels: $0, height: labels.height, width: labels.width, numClasses: numClasses)
            }
        }
    }

    public func lossNormalizer(labels: LabelBatch) -> Int {
        let hw = labels.height * labels.width
        var n = 0
        for b in 0..<labels.batch {
            var present = [Bool](repeating: false, count: numClasses)
            for l in labels.values[(b * hw)..<((b + 1) * hw)] where Int(l) < numClasses { present[Int(l)] = true }
            n += present.filter { $0 }.count
        }
        return n
    }

    /// Token features → the four stride maps (cached for the backward).
    private func multiScale(_ features: [Tensor], grid: (h: Int, w: Int)) -> [Tensor] {
        precondition(features.count == 4, "Mask2FormerDecodeHead: \(features.count) feature maps for 4 out_indices")
        let C = head.pixelDecoder.inputChannels, n = grid.h * grid.w
        let B = features[0].count / (n * C)
        batch = B
        self.grid = grid
        maps = features.indices.map { j in
            let m = mapBuffers[j].ensure([B, C, grid.h, grid.w])
            Kernels.transpose(features[j].data, rows: n, cols: C, into: m.data, batch: B)
            return m
        }
        scaled = maps.indices.map { j in
            let m = maps[j], s = factors[j]
            if s == 1 { return m }
            let out = scaledBuffers[j].ensure([B, C, Int(Double(grid.h) * s), Int(Double(grid.w) * s)])
            Resample.bilinear(m, into: out, scaleFactor: (s, s))
            return out
        }
        return scaled
    }

    private func tokensForForward() -> Tensor? {
        if head.link == nil { return nil }
        guard let t = linkTokens else {
            preconditionFailure("Mask2FormerDecodeHead: linkTokens (the PEFT tokens of all layers) must be set before a forward")
        }
        return t
    }

    public func forwardLoss(features: [Tensor], grid: (h: Int, w: Int), labels: LabelBatch, normalizer: Int) -> LossTerms {
        let maps = multiScale(features, grid: grid)
        head.forward(features: maps, tokens: tokensForForward())
        let m = Swift.max(1, normalizer)
        let weightSum = 0.1 * Double(head.queries * globalBatchSize) + 0.9 * Double(normalizer)
        let terms: Mask2FormerCriterion.Terms
        if let seeds = pointSeeds {
            precondition(seeds.count == labels.batch, "Mask2FormerDecodeHead: \(seeds.count) point seeds for a batch of \(labels.batch)")
            var generators = seeds.map { RandomGenerator(seed: $0) }
            terms = head.loss(targets: targets(labels), normalizer: Float(m), generators: &generators, classWeightSum: weightSum)
            pointSeeds = nil
        } else {
            terms = head.loss(targets: targets(labels), normalizer: Float(m), rng: &rng, classWeightSum: weightSum)
        }
        return LossTerms(sum: terms.total * Double(m), normalizer: m)
    }

    public func backwardLoss(dFeatures: [Tensor]) {
        let C = head.pixelDecoder.inputChannels, n = grid.h * grid.w, B = batch
        let dScaled = scaled.indices.map { scratch.zeros(Mask2FormerDecodeHead.scaledGradientKeys[$0], scaled[$0].shape) }
        if let tokens = tokensForForward(), linkTokensGradient.shape != tokens.shape {
            linkTokensGradient = Tensor(zeros: tokens.shape)
        }
        head.backward(dFeatures: dScaled, dTokens: head.link == nil ? nil : linkTokensGradient)
        let rows = scratch.zeros("dh.rows", [B, n, C])
        for j in 0..<4 {
            let dMap: Tensor
            if factors[j] == 1 { dMap = dScaled[j] } else {
                dMap = scratch.zeros("dh.dMap", maps[j].shape)
                Resample.bilinearBackward(dOutput: dScaled[j], dInput: dMap, scaleFactor: (factors[j], factors[j]))
            }
            Kernels.transpose(dMap.data, rows: C, cols: n, into: rows.data, batch: B)
            Kernels.axpy(1, rows, dFeatures[j])
        }
    }

    /// Zeroes `linkTokensGradient` (after the caller has consumed it).
    public func zeroLinkTokensGradient() { linkTokensGradient.zero() }

    public func predict(features: [Tensor], grid: (h: Int, w: Int), size: (h: Int, w: Int)) -> Tensor {
        let maps = PhaseTimer.measure("head.multiScale") { multiScale(features, grid: grid) }
        PhaseTimer.measure("head.forward") { _ = head.forward(features: maps, tokens: tokensForForward(), inference: true) }
        return PhaseTimer.measure("head.semanticLogits") { head.semanticLogits(size: size) }
    }
}
