import Backbone
import Core
import Foundation
import Heads
import Layers
import Numerics
import PEFT

/// The network a run trains: frozen DINOv2 → PEFT adapter (Causal-Tune, Rein) after every
/// block → decode head (reference §Backbone–§Heads), built from `model.*` of the config
/// through `BackboneRegistry` and `PEFTRegistry`.
///
///     x₀ = embed(images)                           images [b, 3, S, S]
///     x_{i+1} = A_i(Block_i(x_i))                  tokens [b, T, C], T = 1 + R + h·w
///     F_j = patches(x_{o_j + 1})                   [b, h·w, C] for o_j in out_indices
///     L = head(F_0 … F_{J−1}, labels)              sum over this rank / global normaliser
///
/// Backward: the head gives ∂L/∂F_j; they are placed in the patch rows of ∂L/∂x_{o_j+1}
/// (prefix rows zero) and the frozen backbone's backward runs down to the first adapter,
/// calling the adapter's backward (which accumulates the Causal-Tune gradients); block 0's
/// backward, which would only give the unused ∂L/∂x₀, is skipped. Only the adapter
/// and the head have gradients; the backbone weights are never touched.
public final class SegmentationNetwork {
    public let backbone: any Backbone
    public let adapter: (any PEFTAdapter)?
    /// The adapter's tokens for Rein's token → query link (resolved once, not per step).
    private let tokenLink: (any PEFTTokenLink)?
    public let head: DecodeHead
    public let config: ExperimentConfig
    /// Input size S (the backbone's fixed image size) and patch grid.
    public var inputSize: Int { backbone.imageHeight }
    public var grid: (h: Int, w: Int) { backbone.grid }

    private var features: [Tensor] = []      // F_j [b, N, C]
    private var dFeatures: [Tensor] = []     // ∂L/∂F_j
    private var dTokens: [Tensor] = []       // ∂L/∂x_{o_j+1} [b, T, C]

    /// Builds the model; `seed` drives the trainable initialisation (adapter, head) and
    /// `weights: random` backbones.
    public init(config: ExperimentConfig, seed: UInt64) throws {
        self.config = config
        let m = config.model
        // Checked before the backbone weights are read: a rank above C adds nothing but values.
        if m.peft.method != .none, let r = m.peft.loraRank, let a = try? BackboneArchitecture.named(m.backbone.arch),
           r > a.channels {
            throw CausalTuneError("model.peft.lora_rank: \(r) exceeds the embed dim C = \(a.channels) of \(a.name) (a rank above C only adds values)")
        }
        var settings = m.backbone
        settings.seed = seed
        backbone = try settings.makeBackbone()
        let arch = backbone.architecture
        var rng = RandomGenerator(seed: seed &+ 0x5EED)
        let adapter = try PEFTRegistry.make(options: m.peft, layers: arch.depth, channels: arch.channels,
                                            patchSize: m.backbone.patchSize, seed: rng.next())
        self.adapter = adapter
        tokenLink = adapter?.tokenLink
        backbone.adapter = adapter
        // With recompute every layer's adapter forward is re-run right before its backward,
        // so one cache serves all layers (≈ 3·b·N·C floats per layer saved).
        adapter?.sharesOneCache = backbone.recompute
        let outIndices = m.head.outIndices ?? defaultOutIndices(depth: arch.depth)
        for i in outIndices where i < 0 || i >= arch.depth {
            throw CausalTuneError("model.head.out_indices: \(i) is not a block of \(arch.name) (0…\(arch.depth - 1))")
        }
        switch m.head.type {
        case .linear:
            head = LinearHead(channels: arch.channels, numClasses: m.head.numClasses, outIndices: outIndices, rng: &rng)
        case .mask2former:
            guard outIndices.count == 4 else {
                throw CausalTuneError("model.head.out_indices: mask2former takes 4 blocks, got \(outIndices)")
            }
            // Rein's token → query link when there are PEFT tokens (one query per token);
            // learned queries otherwise (method: none, or a method without tokens).
            head = Mask2FormerDecodeHead(channels: arch.channels, numClasses: m.head.numClasses, outIndices: outIndices,
                                         globalBatchSize: config.train.batchSize, rng: &rng,
                                         queries: tokenLink?.linkTokenShape.tokens ?? 100, linkToTokens: tokenLink != nil)
        }
    }

    /// Every trainable parameter (reference §Files names): `peft/…` then `head/…`.
    public var trainableParameters: [NamedParameter] {
        (adapter?.trainableParameters ?? []) + head.parameters
    }

    /// Trainable values: all, the PEFT set (`peft/…`), the head (`head/…`) and, inside the
    /// head, Rein's token → query link (`head/link.…`, 0 for the linear head).
    public var trainableCounts: (total: Int, peft: Int, head: Int, link: Int) {
        var peft = 0, head = 0, link = 0
        for p in trainableParameters {
            let n = p.parameter.value.count
            if p.name.hasPrefix("peft/") { peft += n } else { head += n }
            if p.name.hasPrefix("head/link.") { link += n }
        }
        return (peft + head, peft, head, link)
    }

    /// `trainable parameters: 25.57 M (peft 4.56 M, head 21.01 M of which the token → query
    /// link 0.46 M)` — printed at the start of a run.
    public var trainableSummary: String {
        let c = trainableCounts
        let m = { (n: Int) in String(format: "%.2f M", Double(n) / 1e6) }
        let link = c.link > 0 ? " of which the token → query link \(m(c.link))" : ""
        return "trainable parameters: \(m(c.total)) (peft \(m(c.peft)), head \(m(c.head))\(link))"
    }

    /// What a checkpoint must match to be loaded into this network.
    public var signature: ModelSignature {
        let m = config.model
        return ModelSignature(arch: m.backbone.arch, embedDim: backbone.channels, depth: backbone.architecture.depth,
                              peftMethod: m.peft.method.rawValue, tokens: m.peft.method == .none ? 0 : m.peft.tokens,
                              loraRank: m.peft.method == .none ? nil : m.peft.loraRank, headType: head.type,
                              outIndices: head.outIndices, numClasses: head.numClasses)
    }

    // MARK: training

    /// Timings of the last `forwardBackward` (seconds).
    public private(set) var forwardSeconds = 0.0
    public private(set) var backwardSeconds = 0.0
    /// The head's share of them (loss forward; loss backward).
    public private(set) var headForwardSeconds = 0.0
    public private(set) var headBackwardSeconds = 0.0

    /// Forward, loss and backward on this rank's images `[b, 3, S, S]` with `labels`
    /// `[b, S, S]`; the head normalises by the global `normalizer`. Gradients accumulate
    /// into the adapter's and head's buffers (zero them first). `pointSeeds` (one per image)
    /// seed the mask2former head's point sampling (`Mask2FormerDecodeHead.pointSeeds`); the
    /// linear head draws nothing.
    public func forwardBackward(images: Tensor, labels: LabelBatch, normalizer: Int, pointSeeds: [UInt64]? = nil) -> LossTerms {
        let t0 = Date()
        if let m2f = head as? Mask2FormerDecodeHead { m2f.pointSeeds = pointSeeds }
        backbone.forward(images)
        let feats = extractFeatures(batch: images.shape[0])
        setLinkTokens()
        let th = Date()
        let terms = head.forwardLoss(features: feats, grid: grid, labels: labels, normalizer: normalizer)
        let t1 = Date()
        headForwardSeconds = t1.timeIntervalSince(th)
        for d in dFeatures { Kernels.zero(d) }
        head.backwardLoss(dFeatures: dFeatures)
        headBackwardSeconds = Date().timeIntervalSince(t1)
        passLinkTokenGradient()
        var grads: [Int: Tensor] = [:]
        let P = backbone.prefixTokens, N = grid.h * grid.w, C = backbone.channels, T = P + N
        let b = images.shape[0]
        for (j, i) in head.outIndices.enumerated() {
            let g = dTokens[j]
            let src = dFeatures[j].data, dst = g.data
            for bi in 0..<b {
                (dst + bi * T * C).update(repeating: 0, count: P * C)
                Kernels.copy(src + bi * N * C, into: dst + (bi * T + P) * C, count: N * C)
            }
            if let prev = grads[i] { Kernels.axpy(1, g, prev) } else { grads[i] = g }
        }
        backbone.backward(outputGradients: grads, inputGradient: false)
        let t2 = Date()
        forwardSeconds = t1.timeIntervalSince(t0)
        backwardSeconds = t2.timeIntervalSince(t1)
        return terms
    }

    /// Rein's token → query link: a query-based head reads every layer's PEFT tokens.
    private func setLinkTokens() {
        guard let m2f = head as? Mask2FormerDecodeHead, let a = tokenLink else { return }
        let s = a.linkTokenShape, shape = [s.layers, s.tokens, s.channels]
        let t: Tensor
        if let lt = m2f.linkTokens, lt.shape == shape { t = lt } else { t = Tensor(zeros: shape) }
        a.allTokens(into: t)
        m2f.linkTokens = t
    }

    /// Hands the head's link-token gradient to the adapter's token gradients.
    private func passLinkTokenGradient() {
        guard let m2f = head as? Mask2FormerDecodeHead, let a = tokenLink, m2f.linkTokensGradient.count > 0 else { return }
        a.accumulateAllTokensGradient(m2f.linkTokensGradient)
        m2f.linkTokensGradient.zero()
    }

    /// Copies the patch tokens of the out_indices blocks into `features` ([b, N, C] each).
    private func extractFeatures(batch b: Int) -> [Tensor] {
        let P = backbone.prefixTokens, N = grid.h * grid.w, C = backbone.channels, T = P + N
        if features.count != head.outIndices.count || features.first?.shape[0] != b {
            features = head.outIndices.map { _ in Tensor(zeros: [b, N, C]) }
            dFeatures = head.outIndices.map { _ in Tensor(zeros: [b, N, C]) }
            dTokens = head.outIndices.map { _ in Tensor(zeros: [b, T, C]) }
        }
        for (j, i) in head.outIndices.enumerated() {
            let src = backbone.output(ofBlock: i).data, dst = features[j].data
            for bi in 0..<b { Kernels.copy(src + (bi * T + P) * C, into: dst + bi * N * C, count: N * C) }
        }
        return features
    }

    // MARK: inference

    /// Logits `[n, K, h, w]` for normalised windows `[n, 3, h, w]` with h, w ≤ S: the windows
    /// are zero-padded (bottom/right) to S×S, run as one batch (backbone without its backward
    /// caches), and the logits cropped back.
    public func logits(window: Tensor) throws -> Tensor {
        let S = inputSize, n = window.shape[0], h = window.shape[2], w = window.shape[3], K = head.numClasses
        guard h <= S && w <= S else {
            throw CausalTuneError("evaluation window \(h)x\(w) is larger than model.backbone.image_size \(S)")
        }
        var input = window
        if h != S || w != S {
            input = Tensor(zeros: [n, 3, S, S])
            for bc in 0..<(n * 3) { for y in 0..<h {
                (input.data + (bc * S + y) * S).update(from: window.data + (bc * h + y) * w, count: w)
            } }
        }
        PhaseTimer.measure("window.backbone") { backbone.forward(input, forBackward: false) }
        let feats = extractFeatures(batch: n)
        setLinkTokens()
        let full = PhaseTimer.measure("window.head") { head.predict(features: feats, grid: grid, size: (S, S)) }
        if h == S && w == S { return full }
        let out = Tensor(zeros: [n, K, h, w])
        for bk in 0..<(n * K) { for y in 0..<h {
            (out.data + (bk * h + y) * w).update(from: full.data + (bk * S + y) * S, count: w)
        } }
        return out
    }

    /// Windows per `logits(window:)` call in evaluation (`SlidingWindow.batch`): the
    /// mask2former head runs the windows of an image as one batch (its products are larger,
    /// ≈ 2× faster on the synthetic benchmark — docs/mask2former.md), as many as keep the
    /// upsampled mask logits [n, Q, S, S] within 2^26 floats (256 MB); the linear head one.
    public var evaluationBatch: Int {
        guard let m2f = head as? Mask2FormerDecodeHead else { return 1 }
        return Swift.max(1, Swift.min(8, (1 << 26) / Swift.max(1, m2f.head.queries * inputSize * inputSize)))
    }
}
