import Foundation
import Numerics
import Layers

/// The Mask2Former decode head with Rein's token → query link (mmseg `Mask2FormerHead` as
/// `ReinMask2FormerHead` with `replace_query_feat=True` configures it), on four feature maps
/// `[B, C_in, h, w]` at strides 4, 8, 16, 32 and the PEFT tokens of all layers `[L, m, C_b]`:
///
///     p  = link(tokens)                       query positions [Q, D], Q = m (`TokenQueryLink`)
///     x₀ = querys2feat(p)                     query features [Q, D], the same for every image
///     F, memory = PixelDecoder(features)      mask features [B, D, H₄, W₄]; tokens of strides 32, 16, 8
///     m_l = memory_l + level_embed[l],  P_l = sine(h_l, w_l)
///     pred(x, l): y = LN(x);  class = cls_embed(y) [B, Q, K+1];
///                 mask = MLP₃(y) · F [B, Q, H₄, W₄] (`einsum bqc,bchw→bqhw`);
///                 attention mask of level l: bilinear(mask → h_l × w_l) < 0  (σ < 0.5)
///     prediction 0 = pred(x₀, 0); for i = 0 … 8, l = i mod 3:
///         rows of the mask with every key masked are unmasked
///         x_{i+1} = DecoderLayer_i(x_i, p, m_l, P_l, mask);  prediction i+1 = pred(x_{i+1}, (i+1) mod 3)
///     loss = Σ over the 10 predictions of `Mask2FormerCriterion` (deep supervision)
///     semantic logits = bilinear↑(mask₉ → input size) then Σ_q softmax(class₉)[q, :K] · σ(mask₉[q])
///
/// Without tokens (`backboneChannels: nil`, PEFT `method: none`) the head is plain Mask2Former:
/// p = `query_embed.weight` and x₀ = `query_feat.weight`, both learned [Q, D] ~ N(0, 1).
/// MLP₃ = Linear-ReLU-Linear-ReLU-Linear (D → D). LayerNorm eps 1e-5. The backward runs the
/// chain in reverse: each prediction's gradient into its x_i and F, the decoder layers into x,
/// p and the memory, the pixel decoder into the features, and p into the tokens.
/// Parameter names (under the caller's prefix): `link.*`, `querys2feat.*` (or `query_feat.weight`,
/// `query_embed.weight`), `pixel_decoder.*`,
/// `transformer_decoder.layers.<i>.*`, `transformer_decoder.post_norm.*`, `level_embed.weight`,
/// `cls_embed.*`, `mask_embed.{0,2,4}.*`.
///
/// Memory: what the backward reads (x_i, the predictions, their gradients) is kept in buffers
/// reused from step to step; every layer of the head borrows its work buffers from one
/// `ScratchArena`, so a training step allocates no tensors once the first has run.
public final class Mask2FormerHead: Module {
    public let numClasses: Int, channels: Int, queries: Int
    public let link: TokenQueryLink?
    public let querysToFeat: Linear?
    public let queryFeat: Parameter?     // [Q, D], only without the token link
    public let queryEmbed: Parameter?    // [Q, D], only without the token link
    public let pixelDecoder: PixelDecoder
    public let levelEmbed: Parameter      // [3, D]
    public let layers: [DecoderLayer]
    public let postNorm: LayerNorm
    public let classEmbed: Linear
    public let maskEmbed: [Linear]
    public var criterion: Mask2FormerCriterion

    /// One set of predictions: class logits [B, Q, K+1] and mask logits [B, Q, H₄, W₄].
    public struct Prediction {
        public let classLogits: Tensor
        public let maskLogits: Tensor
    }

    public private(set) var predictions: [Prediction] = []
    private var xs: [Tensor] = []                // x₀ (broadcast to [B, Q, D]) … x₉
    private var p = Tensor(zeros: [0]), x0 = Tensor(zeros: [0])
    private var maskFeatures = Tensor(zeros: [0])
    private var levelInputs: [Tensor] = [], levelPos: [Tensor] = []
    private var dPredictions: [(Tensor, Tensor)] = []
    /// The storage behind x_i, the predictions and their gradients, one per prediction.
    private var xBuffers: [CacheBuffer], classBuffers: [CacheBuffer], maskBuffers: [CacheBuffer]
    private var dClassBuffers: [CacheBuffer], dMaskBuffers: [CacheBuffer]
    private var x0Buffer = CacheBuffer(), levelBuffers = [CacheBuffer](repeating: CacheBuffer(), count: 3)
    private var sines = SineEncodings()
    /// The attention mask of the decoder layer being run, [B, Q, h·w] (true = masked).
    private var maskBits: [Bool] = []
    private let scratch: ScratchArena
    private static let activationKeys = ["m2f.y", "m2f.h0", "m2f.h1", "m2f.e"]
    private static let levelGradientKeys = ["m2f.dLevel0", "m2f.dLevel1", "m2f.dLevel2"]

    public init(inputChannels: Int, backboneChannels: Int?, numClasses: Int, channels: Int = 256, queries: Int = 100,
                decoderLayers: Int = 9, heads: Int = 8, encoderLayers: Int = 6, points: Int = 4,
                encoderFeedforward: Int = 1024, decoderFeedforward: Int = 2048, groups: Int = 32) {
        self.numClasses = numClasses
        self.channels = channels
        self.queries = queries
        let scratch = ScratchArena()
        self.scratch = scratch
        if let backboneChannels {
            link = TokenQueryLink(backboneChannels: backboneChannels, channels: channels, scratch: scratch)
            querysToFeat = Linear(inputDimensions: channels, outputDimensions: channels)
            queryFeat = nil; queryEmbed = nil
        } else {
            link = nil; querysToFeat = nil
            queryFeat = Parameter(zeros: [queries, channels]); queryEmbed = Parameter(zeros: [queries, channels])
        }
        pixelDecoder = PixelDecoder(inputChannels: inputChannels, channels: channels, encoderLayers: encoderLayers,
                                    heads: heads, points: points, feedforward: encoderFeedforward, groups: groups,
                                    scratch: scratch)
        levelEmbed = Parameter(zeros: [3, channels])
        layers = (0..<decoderLayers).map { _ in
            DecoderLayer(channels: channels, heads: heads, feedforward: decoderFeedforward, scratch: scratch)
        }
        postNorm = LayerNorm(channels: channels, eps: 1e-5)
        classEmbed = Linear(inputDimensions: channels, outputDimensions: numClasses + 1)
        maskEmbed = (0..<3).map { _ in Linear(inputDimensions: channels, outputDimensions: channels) }
        criterion = Mask2FormerCriterion(numClasses: numClasses)
        let perPrediction = [CacheBuffer](repeating: CacheBuffer(), count: decoderLayers + 1)
        xBuffers = perPrediction; classBuffers = perPrediction; maskBuffers = perPrediction
        dClassBuffers = perPrediction; dMaskBuffers = perPrediction
    }

    public func parameters(prefix: String) -> [NamedParameter] {
        var ps: [NamedParameter] = []
        if let link, let querysToFeat {
            ps += link.parameters(prefix: prefix + "link.") + querysToFeat.parameters(prefix: prefix + "querys2feat.")
        }
        if let queryFeat, let queryEmbed {
            ps += [NamedParameter(name: prefix + "query_feat.weight", parameter: queryFeat),
                   NamedParameter(name: prefix + "query_embed.weight", parameter: queryEmbed)]
        }
        ps += pixelDecoder.parameters(prefix: prefix + "pixel_decoder.")
        for (i, l) in layers.enumerated() { ps += l.parameters(prefix: prefix + "transformer_decoder.layers.\(i).") }
        ps += postNorm.parameters(prefix: prefix + "transformer_decoder.post_norm.")
        ps.append(NamedParameter(name: prefix + "level_embed.weight", parameter: levelEmbed))
        ps += classEmbed.parameters(prefix: prefix + "cls_embed.")
        for (i, l) in maskEmbed.enumerated() { ps += l.parameters(prefix: prefix + "mask_embed.\(2 * i).") }
        return ps
    }

    /// mmdet's initialisation: decoder layers Xavier-uniform (matrices), pixel decoder as its
    /// own `reset`, level embedding N(0, 1), Linear layers PyTorch default.
    public func reset(rng: inout RandomGenerator) {
        link?.reset(rng: &rng)
        querysToFeat?.reset(rng: &rng)
        if let queryFeat { rng.fillNormal(queryFeat.value) }
        if let queryEmbed { rng.fillNormal(queryEmbed.value) }
        pixelDecoder.reset(rng: &rng)
        for l in layers {
            l.reset(rng: &rng)
            for p in l.namedParameters where p.parameter.value.rank > 1 { xavierUniform(p.parameter.value, &rng) }
        }
        rng.fillNormal(levelEmbed.value)
        classEmbed.reset(rng: &rng)
        for l in maskEmbed { l.reset(rng: &rng) }
    }

    // MARK: prediction head

    /// The class and mask logits of prediction i, [B, Q, K+1] and [B, Q, H₄, W₄].
    private func predictionBuffers(_ i: Int, batch B: Int) -> Prediction {
        Prediction(classLogits: classBuffers[i].ensure([B, queries, numClasses + 1]),
                   maskLogits: maskBuffers[i].ensure([B, queries, maskFeatures.shape[2], maskFeatures.shape[3]]))
    }

    /// y = LN(x) and the mask embedding MLP₃(y) of x [B, Q, D]: returns [y, h₁, h₂, e]
    /// (scratch, valid until the next call).
    private func embed(_ x: Tensor) -> [Tensor] {
        let D = channels, B = x.shape[0], Q = x.count / (B * D)
        let rows = [B * Q, D]
        let y = scratch.tensor(Mask2FormerHead.activationKeys[0], rows)
        postNorm.forward(x.reshaped(rows), into: y)
        var acts = [y]
        var h = y
        for (i, l) in maskEmbed.enumerated() {
            let o = scratch.tensor(Mask2FormerHead.activationKeys[i + 1], rows)
            l.forward(h, into: o)
            if i < 2 { let op = o.data; for k in 0..<o.count where op[k] < 0 { op[k] = 0 } }
            acts.append(o)
            h = o
        }
        return acts
    }

    /// y = LN(x); class = cls_embed(y); mask = MLP₃(y)·F. x [B, Q, D]. Fills `prediction` and
    /// returns y and the MLP activations (h₁, h₂, e) for the backward (scratch, valid until
    /// the next predict).
    private func predict(_ x: Tensor, into prediction: Prediction) -> [Tensor] {
        let D = channels, B = x.shape[0], Q = x.count / (B * D)
        let acts = embed(x)
        classEmbed.forward(acts[0], into: prediction.classLogits.reshaped([B * Q, numClasses + 1]))
        maskProduct(acts[3], into: prediction.maskLogits)
        return acts
    }

    /// mask [B, Q, H₄, W₄] = e [B·Q, D] · F (`einsum bqc,bchw→bqhw`).
    private func maskProduct(_ e: Tensor, into mask: Tensor) {
        let D = channels, B = mask.shape[0], Q = mask.shape[1]
        let hw = maskFeatures.shape[2] * maskFeatures.shape[3]
        for b in 0..<B {
            BLAS.gemm(transposeA: false, transposeB: false, m: Q, n: hw, k: D, a: e.data + b * Q * D, lda: D,
                      b: maskFeatures.data + b * D * hw, ldb: hw, c: mask.data + b * Q * hw, ldc: hw)
        }
    }

    /// Backward of `predict` (recomputed on x): accumulates ∂x, ∂F and the parameter gradients.
    private func predictBackward(_ x: Tensor, dClass: Tensor, dMask: Tensor, dX: Tensor, dF: Tensor) {
        let D = channels, B = x.shape[0], Q = x.count / (B * D)
        let rows = [B * Q, D]
        let (H4, W4) = (maskFeatures.shape[2], maskFeatures.shape[3]), hw = H4 * W4
        // Restores postNorm's statistics and the activations; the logits are not needed again.
        let acts = predict(x, into: Prediction(classLogits: scratch.tensor("m2f.class", [B, Q, numClasses + 1]),
                                               maskLogits: scratch.tensor("m2f.mask", [B, Q, H4, W4])))
        let e = acts[3]
        var dh = scratch.zeros("m2f.dh1", rows)
        for b in 0..<B {
            // ∂e = ∂mask · Fᵀ;  ∂F += eᵀ · ∂mask
            BLAS.gemm(transposeA: false, transposeB: true, m: Q, n: D, k: hw, a: dMask.data + b * Q * hw, lda: hw,
                      b: maskFeatures.data + b * D * hw, ldb: hw, c: dh.data + b * Q * D, ldc: D)
            BLAS.gemm(transposeA: true, transposeB: false, m: D, n: hw, k: Q, a: e.data + b * Q * D, lda: D,
                      b: dMask.data + b * Q * hw, ldb: hw, beta: 1, c: dF.data + b * D * hw, ldc: hw)
        }
        for i in stride(from: 2, through: 0, by: -1) {
            if i < 2 {
                let a = acts[i + 1].data, g = dh.data
                for k in 0..<dh.count where a[k] <= 0 { g[k] = 0 }
            }
            // Two buffers in turn: one layer's ∂input is the next (earlier) layer's ∂output.
            let dIn = scratch.zeros(i % 2 == 0 ? "m2f.dh0" : "m2f.dh1", rows)
            maskEmbed[i].backward(dOutput: dh, input: acts[i], dInput: dIn)
            dh = dIn
        }
        classEmbed.backward(dOutput: dClass.reshaped([B * Q, numClasses + 1]), input: acts[0], dInput: dh)
        postNorm.backward(dOutput: dh, input: x.reshaped(rows), dInput: dX.reshaped(rows))
    }

    /// Sets `maskBits` to the attention mask [B, Q, h·w] of level l from mask logits: bilinear
    /// resize, masked where the logit is < 0; rows masked everywhere are unmasked.
    private func computeAttentionMask(_ mask: Tensor, level l: Int) {
        let (h, w) = pixelDecoder.shapes[l]
        let B = mask.shape[0], Q = mask.shape[1]
        let small = scratch.tensor("m2f.smallMask", [B, Q, h, w])
        Resample.bilinear(mask, into: small)
        setMaskBits(small)
    }

    /// `maskBits` ← small [B, Q, h, w] < 0, rows masked everywhere unmasked.
    private func setMaskBits(_ small: Tensor) {
        let B = small.shape[0], Q = small.shape[1], h = small.shape[2], w = small.shape[3]
        if maskBits.count != small.count { maskBits = [Bool](repeating: false, count: small.count) }
        let hw = h * w, sp = small.data
        maskBits.withUnsafeMutableBufferPointer { out in
            for r in 0..<(B * Q) {
                var all = true
                for j in 0..<hw { let m = sp[r * hw + j] < 0; out[r * hw + j] = m; if !m { all = false } }
                if all { for j in 0..<hw { out[r * hw + j] = false } }
            }
        }
    }

    // MARK: forward / loss / backward

    /// features: [B, C_in, h, w] at strides 4, 8, 16, 32; tokens [L, Q, C_b] (nil without the
    /// link) → the 1 + layers predictions (also kept in `predictions`).
    ///
    /// `inference: true` (evaluation; no `loss` / `backward` may follow) computes what the
    /// semantic logits need and no more: the predictions before the last only as the decoder
    /// layers' attention masks (their mask logits, made and resized as in training, without
    /// class logits); it returns (and keeps) the last prediction alone — the same bits as the
    /// full forward's last. (Making the level masks as e·bilinear(F) at the level's size —
    /// equal in exact arithmetic, ≈ 4× cheaper — together with an 8-lane σ changed 72 pixels
    /// of 1 of the 150 images of the synthetic benchmark with a 1-step checkpoint, whose class
    /// scores tie to rounding; evaluation keeps the bits instead.)
    @discardableResult
    public func forward(features: [Tensor], tokens: Tensor?, inference: Bool = false) -> [Prediction] {
        let D = channels, B = features[0].shape[0], Q = queries
        if let link, let querysToFeat {
            guard let tokens else { preconditionFailure("Mask2FormerHead: the token link needs the PEFT tokens") }
            precondition(tokens.rank == 3 && tokens.shape[1] == queries, "Mask2FormerHead: tokens \(tokens.shape), expected [L, \(queries), C]")
            p = link.forward(tokens)
            x0 = x0Buffer.ensure([Q, D])
            querysToFeat.forward(p, into: x0)
        } else {
            p = queryEmbed!.value
            x0 = queryFeat!.value
        }
        maskFeatures = PhaseTimer.measure("m2f.pixelDecoder") { pixelDecoder.forward(features) }
        let shapes = pixelDecoder.shapes, starts = DeformableAttentionCore.levelStarts(shapes)
        let memory = pixelDecoder.memory, S = memory.count / (B * D)
        levelInputs = []; levelPos = []
        for l in 0..<3 {
            let hw = shapes[l].h * shapes[l].w
            let t = levelBuffers[l].ensure([B, hw, D])
            for b in 0..<B {
                let src = memory.data + (b * S + starts[l]) * D, dst = t.data + b * hw * D
                for r in 0..<hw { Kernels.add(src + r * D, levelEmbed.value.data + l * D, into: dst + r * D, count: D) }
            }
            levelInputs.append(t)
            levelPos.append(sines.tokens(height: shapes[l].h, width: shapes[l].w, features: D / 2))
        }
        let first = xBuffers[0].ensure([B, Q, D])
        for b in 0..<B { (first.data + b * Q * D).update(from: x0.data, count: Q * D) }
        xs = [first]
        dPredictions = []
        if inference { return inferenceForward(batch: B) }
        var pred = predictionBuffers(0, batch: B)
        PhaseTimer.measure("m2f.predict") { _ = predict(first, into: pred) }
        predictions = [pred]
        for (i, layer) in layers.enumerated() {
            let l = i % 3
            PhaseTimer.measure("m2f.attentionMask") { computeAttentionMask(pred.maskLogits, level: l) }
            let out = xBuffers[i + 1].ensure([B, Q, D])
            PhaseTimer.measure("m2f.decoderLayer") { layer.forward(query: xs[i], queryPos: p, memory: levelInputs[l], memoryPos: levelPos[l], mask: maskBits, into: out) }
            xs.append(out)
            pred = predictionBuffers(i + 1, batch: B)
            PhaseTimer.measure("m2f.predict") { _ = predict(out, into: pred) }
            predictions.append(pred)
        }
        return predictions
    }

    /// The decoder of an `inference` forward (x₀ in `xs`): see `forward`.
    private func inferenceForward(batch B: Int) -> [Prediction] {
        let D = channels, Q = queries
        let mask = maskBuffers[0].ensure([B, Q, maskFeatures.shape[2], maskFeatures.shape[3]])
        for (i, layer) in layers.enumerated() {
            let l = i % 3
            PhaseTimer.measure("m2f.predict") { maskProduct(embed(xs[i])[3], into: mask) }
            PhaseTimer.measure("m2f.attentionMask") { computeAttentionMask(mask, level: l) }
            let out = xBuffers[i + 1].ensure([B, Q, D])
            PhaseTimer.measure("m2f.decoderLayer") { layer.forward(query: xs[i], queryPos: p, memory: levelInputs[l], memoryPos: levelPos[l], mask: maskBits, into: out) }
            xs.append(out)
        }
        let pred = predictionBuffers(layers.count, batch: B)
        PhaseTimer.measure("m2f.predict") { _ = predict(xs[layers.count], into: pred) }
        predictions = [pred]
        return predictions
    }

    /// The summed loss of all predictions of the last forward (`normalizer` as the criterion's);
    /// keeps the gradients of the predictions for `backward`.
    public func loss(targets: [MaskTargets], normalizer: Float, rng: inout RandomGenerator,
                     points: [LossPointSource]? = nil, classWeightSum: Double? = nil) -> Mask2FormerCriterion.Terms {
        var generators = [rng]
        defer { rng = generators[0] }
        return loss(targets: targets, normalizer: normalizer, generators: &generators, points: points,
                    classWeightSum: classWeightSum)
    }

    /// As above, drawing image b's random points from `generators[b]` (one per image; or one in
    /// all), through every prediction in order — see `Mask2FormerCriterion`.
    public func loss(targets: [MaskTargets], normalizer: Float, generators: inout [RandomGenerator],
                     points: [LossPointSource]? = nil, classWeightSum: Double? = nil) -> Mask2FormerCriterion.Terms {
        precondition(predictions.count == layers.count + 1, "Mask2FormerHead: loss after an inference forward")
        var total = Mask2FormerCriterion.Terms()
        dPredictions = []
        for (i, pred) in predictions.enumerated() {
            let dc = dClassBuffers[i].ensure(pred.classLogits.shape), dm = dMaskBuffers[i].ensure(pred.maskLogits.shape)
            dc.zero(); dm.zero()
            let t = criterion.loss(classLogits: pred.classLogits, maskLogits: pred.maskLogits, targets: targets,
                                   normalizer: normalizer, points: points?[i] ?? .random, generators: &generators, dClass: dc, dMask: dm,
                                   classWeightSum: classWeightSum, scratch: scratch)
            total.classification += t.classification
            total.mask += t.mask
            total.dice += t.dice
            if i == predictions.count - 1 { total.assignments = t.assignments }
            dPredictions.append((dc, dm))
        }
        return total
    }

    /// Backward of the last `loss`: accumulates parameter gradients, dFeatures[i] (strides 4 …
    /// 32, where given) and ∂tokens [L, Q, C_b] (when given).
    public func backward(dFeatures: [Tensor?], dTokens: Tensor?) {
        precondition(dPredictions.count == predictions.count, "Mask2FormerHead: backward without loss")
        let D = channels, B = xs[0].shape[0], Q = queries
        let dF = scratch.zeros("m2f.dF", maskFeatures.shape)
        let dP = scratch.zeros("m2f.dP", [Q, D])
        // Two buffers in turn: ∂x_i is written while ∂x_{i+1} is read.
        let dxKey = { (i: Int) in i % 2 == 0 ? "m2f.dx0" : "m2f.dx1" }
        let last = layers.count
        var dx = scratch.zeros(dxKey(last), [B, Q, D])
        predictBackward(xs[last], dClass: dPredictions[last].0, dMask: dPredictions[last].1, dX: dx, dF: dF)
        let dLevel = (0..<3).map { scratch.zeros(Mask2FormerHead.levelGradientKeys[$0], levelInputs[$0].shape) }
        for i in stride(from: last - 1, through: 0, by: -1) {
            let dPrev = scratch.zeros(dxKey(i), [B, Q, D])
            layers[i].backward(dOutput: dx, query: xs[i], dQuery: dPrev, dQueryPos: dP, dMemory: dLevel[i % 3])
            predictBackward(xs[i], dClass: dPredictions[i].0, dMask: dPredictions[i].1, dX: dPrev, dF: dF)
            dx = dPrev
        }
        // x₀ = querys2feat(p), the same rows for every image.
        let dX0 = scratch.zeros("m2f.dX0", [Q, D])
        for b in 0..<B { Kernels.axpy(1, dx.data + b * Q * D, dX0.data, count: Q * D) }
        if let link, let querysToFeat {
            querysToFeat.backward(dOutput: dX0, input: p, dInput: dP)
            link.backward(dOutput: dP, dTokens: dTokens)
        } else {
            if let g = queryFeat?.grad { Kernels.axpy(1, dX0, g) }
            if let g = queryEmbed?.grad { Kernels.axpy(1, dP, g) }
        }
        // Memory: the level inputs are memory_l + level_embed[l].
        let shapes = pixelDecoder.shapes, starts = DeformableAttentionCore.levelStarts(shapes)
        let S = starts[2] + shapes[2].h * shapes[2].w
        let dMemory = scratch.zeros("m2f.dMemory", [B, S, D])
        for l in 0..<3 {
            let hw = shapes[l].h * shapes[l].w
            for b in 0..<B {
                Kernels.axpy(1, dLevel[l].data + b * hw * D, dMemory.data + (b * S + starts[l]) * D, count: hw * D)
            }
            if let g = levelEmbed.grad {
                Kernels.accumulateColumnSums(dLevel[l].data, rows: B * hw, cols: D, into: g.data + l * D)
            }
        }
        pixelDecoder.backward(dMaskFeatures: dF, dMemory: dMemory, dFeatures: dFeatures)
    }

    /// Semantic logits [B, K, H, W] of the last forward at `size`:
    /// Σ_q softmax(class)[q, :K] · σ(bilinear↑(mask_q)).
    ///
    /// Upsampling, σ and the sum over queries run tile by tile (`semanticTileArea` output
    /// pixels of one image at a time, in parallel over the tiles): each tile's σ of the Q
    /// upsampled masks [Q, n] stays in cache for the product `probs[:, :K]ᵀ · σ` [K, n] instead
    /// of a [B, Q, H, W] tensor (Q× the output) made and swept three times. The upsampled
    /// values are those of `Resample.bilinear` (`Resample.BilinearRows`, the same bits); σ
    /// is `1 / (1 + expf(−x))` as before. The order stays resize → σ → sum: σ does
    /// not commute with the resize, so summing the class-weighted masks before upsampling
    /// would not be the same function. Every tile is one whole product whichever worker runs
    /// it, so the logits do not depend on the thread count.
    public func semanticLogits(size: (h: Int, w: Int)) -> Tensor {
        let pred = predictions.last!
        let (B, Q, K1) = (pred.classLogits.shape[0], pred.classLogits.shape[1], pred.classLogits.shape[2])
        let K = K1 - 1, hw = size.h * size.w, W = size.w
        let (H4, W4) = (pred.maskLogits.shape[2], pred.maskLogits.shape[3])
        let probs = scratch.copy("sem.probs", of: pred.classLogits)
        Kernels.softmaxRows(probs.data, rows: B * Q, cols: K1)
        let out = Tensor(zeros: [B, K, size.h, size.w])
        let resize = Resample.BilinearRows(input: (H4, W4), output: size)
        let tileRows = Swift.max(1, Swift.min(size.h, Mask2FormerHead.semanticTileArea / Swift.max(W, 1)))
        let tilesPerImage = (size.h + tileRows - 1) / tileRows, tiles = B * tilesPerImage
        let workers = Swift.max(1, Swift.min(Parallel.threads, tiles))
        let sigma = scratch.tensor("sem.sigma", [workers, Q * tileRows * W])
        let masks = pred.maskLogits.data, pp = probs.data, op = out.data, sp = sigma.data
        PhaseTimer.measure("sem.tiles") {
            // Worker w takes tiles w, w + workers, …: its own σ buffer, disjoint output tiles.
            Parallel.forEach(workers) { range in
                for w in range {
                    let s = sp + w * Q * tileRows * W
                    for t in stride(from: w, to: tiles, by: workers) {
                        let b = t / tilesPerImage, y0 = (t % tilesPerImage) * tileRows
                        let rows = Swift.min(tileRows, size.h - y0), n = rows * W
                        for q in 0..<Q {
                            let plane = masks + (b * Q + q) * H4 * W4, dst = s + q * n
                            for r in 0..<rows { resize.row(y0 + r, of: plane, into: dst + r * W) }
                        }
                        Mask2FormerHead.sigmoid(s, count: Q * n)
                        // out[b][:, y0·W ..< y0·W + n] = probs[b][:, :K]ᵀ [K, Q] · σ [Q, n]
                        BLAS.gemm(transposeA: true, transposeB: false, m: K, n: n, k: Q, a: pp + b * Q * K1, lda: K1,
                                  b: s, ldb: n, c: op + b * K * hw + y0 * W, ldc: hw, whole: true)
                    }
                }
            }
        }
        return out
    }

    /// Output pixels per tile of `semanticLogits` (σ of Q = 100 masks: 800 KB).
    static let semanticTileArea = 2048

    /// x ← 1 / (1 + e^(−x)) with libm's `expf`: the bits the semantic logits always had
    /// (see `forward` on why not `Kernels.fastExp`'s 8 lanes).
    static func sigmoid(_ x: UnsafeMutablePointer<Float>, count n: Int) {
        for i in 0..<n { x[i] = 1 / (1 + expf(-x[i])) }
    }

}
