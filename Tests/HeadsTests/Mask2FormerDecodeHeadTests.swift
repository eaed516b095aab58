import Foundation
import Heads
import Layers
import Numerics
import Training
import XCTest

final class Mask2FormerDecodeHeadTests: XCTestCase {
    /// A small head (D 32, 4 queries) on 4×4-grid token features with C = 8.
    func makeHead(_ rng: inout RandomGenerator) -> Mask2FormerDecodeHead {
        let h = Mask2FormerDecodeHead(channels: 8, numClasses: 3, outIndices: [0, 1, 2, 3], globalBatchSize: 2, rng: &rng,
                                      headChannels: 32, queries: 4)
        var s = Mask2FormerLossSettings()
        s.points = 64
        s.importanceSampleRatio = 0     // uniform points only: the loss is smooth in the features
        h.head.criterion.settings = s
        h.linkTokens = randomTensor([3, 4, 8], &rng)
        return h
    }

    func testDecodeHeadFeatureGradientMatchesDirectionalDifference() {
        var rng = RandomGenerator(seed: 31)
        let head = makeHead(&rng)
        let grid = (h: 4, w: 4)
        let features = (0..<4).map { _ in randomTensor([2, 16, 8], &rng) }
        var labels = [UInt8](repeating: 0, count: 2 * 16 * 16)
        for i in labels.indices { labels[i] = UInt8([0, 1, 2, 255][(i / 37) % 4]) }
        let batch = LabelBatch(batch: 2, height: 16, width: 16, values: labels)
        let normalizer = head.lossNormalizer(labels: batch)
        XCTAssertEqual(normalizer, 6)
        XCTAssertTrue(head.parameters.allSatisfy { $0.name.hasPrefix("head/") })
        let start = head.rng
        let terms = head.forwardLoss(features: features, grid: grid, labels: batch, normalizer: normalizer)
        XCTAssertTrue(terms.loss.isFinite && terms.loss > 0)
        let dFeatures = features.map { Tensor(zeros: $0.shape) }
        head.backwardLoss(dFeatures: dFeatures)
        XCTAssertEqual(head.linkTokensGradient.shape, [3, 4, 8])
        XCTAssertGreaterThan(Kernels.l2Norm(head.linkTokensGradient), 0)
        // Directional derivative along random directions of the features.
        let directions = features.map { randomTensor($0.shape, &rng) }
        var analytic = 0.0
        for (d, g) in zip(directions, dFeatures) { analytic += objective(d, g) }
        // The loss is only piecewise smooth (attention-mask thresholds, matching): with this
        // seed a step of 1e-3 crosses a threshold, 1e-4 does not.
        let eps: Float = 1e-4
        func lossAt(_ sign: Float) -> Double {
            let moved = zip(features, directions).map { f, d -> Tensor in
                let m = f.clone(); Kernels.axpy(sign * eps, d, m); return m
            }
            head.rng = start
            return head.forwardLoss(features: moved, grid: grid, labels: batch, normalizer: normalizer).loss
        }
        let numeric = (lossAt(1) - lossAt(-1)) / (2 * Double(eps))
        XCTAssertEqual(analytic, numeric, accuracy: 2e-2 * max(1, abs(numeric)))

        let scores = head.predict(features: features, grid: grid, size: (h: 16, w: 16))
        XCTAssertEqual(scores.shape, [2, 3, 16, 16])
        // Σ_k scores ≤ Σ_q σ(mask) ≤ Q: class probabilities without the no-object column.
        XCTAssertTrue(scores.array.allSatisfy { $0 >= 0 && $0 <= 4 })
    }

    func testLearnedQueriesReproduceTheLinkAndGetGradients() {
        var rng = RandomGenerator(seed: 41)
        let linked = makeHead(&rng)
        var rng2 = RandomGenerator(seed: 41)
        let learned = Mask2FormerDecodeHead(channels: 8, numClasses: 3, outIndices: [0, 1, 2, 3], globalBatchSize: 2,
                                            rng: &rng2, headChannels: 32, queries: 4, linkToTokens: false)
        learned.head.criterion.settings = linked.head.criterion.settings
        XCTAssertTrue(learned.parameters.contains { $0.name == "head/query_embed.weight" })
        XCTAssertFalse(learned.parameters.contains { $0.name.hasPrefix("head/link.") })
        // Same shared weights; the learned queries set to what the link produces.
        let shared = Dictionary(uniqueKeysWithValues: linked.parameters.map { ($0.name, $0.parameter) })
        for p in learned.parameters { if let q = shared[p.name] { p.parameter.value.copy(from: q.value) } }
        let embed = linked.head.link!.forward(linked.linkTokens!)
        learned.head.queryEmbed!.value.copy(from: embed)
        learned.head.queryFeat!.value.copy(from: linked.head.querysToFeat!(embed))
        let grid = (h: 4, w: 4)
        let features = (0..<4).map { _ in randomTensor([2, 16, 8], &rng) }
        let a = linked.predict(features: features, grid: grid, size: (h: 16, w: 16))
        let b = learned.predict(features: features, grid: grid, size: (h: 16, w: 16))
        XCTAssertLessThan(relativeError(b, a), 1e-5)

        var labels = [UInt8](repeating: 1, count: 2 * 16 * 16)
        for i in labels.indices where (i / 16) % 16 < 7 { labels[i] = 2 }
        let batch = LabelBatch(batch: 2, height: 16, width: 16, values: labels)
        let n = learned.lossNormalizer(labels: batch)
        let start = learned.rng
        _ = learned.forwardLoss(features: features, grid: grid, labels: batch, normalizer: n)
        learned.backwardLoss(dFeatures: features.map { Tensor(zeros: $0.shape) })
        for param in [learned.head.queryEmbed!, learned.head.queryFeat!] {
            let dir = randomTensor(param.shape, &rng)
            let analytic = objective(dir, param.grad!)
            let eps: Float = 1e-4
            func lossAt(_ sign: Float) -> Double {
                Kernels.axpy(sign * eps, dir, param.value)
                defer { Kernels.axpy(-sign * eps, dir, param.value) }
                learned.rng = start
                return learned.forwardLoss(features: features, grid: grid, labels: batch, normalizer: n).loss
            }
            let numeric = (lossAt(1) - lossAt(-1)) / (2 * Double(eps))
            XCTAssertEqual(analytic, numeric, accuracy: 2e-2 * max(1, abs(numeric)))
        }
    }

    func testHeadFitsAFixedBatch() {
        // 25 Adam steps on one batch (features, tokens and labels fixed): the loss of the
        // last prediction set falls well below its start — the gradients train the head.
        var rng = RandomGenerator(seed: 51)
        let head = makeHead(&rng)
        head.head.criterion.settings.importanceSampleRatio = 0.75
        let grid = (h: 4, w: 4)
        let features = (0..<4).map { _ in randomTensor([2, 16, 8], &rng) }
        var labels = [UInt8](repeating: 0, count: 2 * 16 * 16)
        for b in 0..<2 { for y in 0..<16 { for x in 0..<16 {
            labels[(b * 16 + y) * 16 + x] = y < 5 + 3 * b ? 0 : (x < 8 ? 1 : 2)
        } } }
        let batch = LabelBatch(batch: 2, height: 16, width: 16, values: labels)
        let n = head.lossNormalizer(labels: batch)
        let params = head.parameters.map(\.parameter)
        let m = params.map { Tensor(zeros: $0.shape) }, v = params.map { Tensor(zeros: $0.shape) }
        var losses: [Double] = []
        for step in 1...25 {
            head.zeroGradients()
            losses.append(head.forwardLoss(features: features, grid: grid, labels: batch, normalizer: n).loss)
            head.backwardLoss(dFeatures: features.map { Tensor(zeros: $0.shape) })
            let lr: Float = 3e-3, b1: Float = 0.9, b2: Float = 0.999
            let c1 = 1 - powf(b1, Float(step)), c2 = 1 - powf(b2, Float(step))
            for (i, p) in params.enumerated() {
                let g = p.grad!.data, w = p.value.data, mi = m[i].data, vi = v[i].data
                for k in 0..<p.value.count {
                    mi[k] = b1 * mi[k] + (1 - b1) * g[k]
                    vi[k] = b2 * vi[k] + (1 - b2) * g[k] * g[k]
                    w[k] -= lr * (mi[k] / c1) / ((vi[k] / c2).squareRoot() + 1e-8)
                }
            }
        }
        XCTAssertTrue(losses.allSatisfy(\.isFinite))
        XCTAssertLessThan(losses.suffix(3).reduce(0, +) / 3, 0.6 * losses[0], "losses \(losses)")
    }

    /// With one point seed per image, an image's loss and feature gradient do not depend on
    /// which images share its batch: the batch [a, b] gives the sum of [a] and [b] (what two
    /// data-parallel ranks compute), importance sampling included. One shared generator does not.
    func testPointSeedsMakeAnImagesLossIndependentOfItsBatch() {
        var rng = RandomGenerator(seed: 61)
        let head = makeHead(&rng)
        head.head.criterion.settings.importanceSampleRatio = 0.75
        let grid = (h: 4, w: 4)
        let features = (0..<4).map { _ in randomTensor([2, 16, 8], &rng) }
        var labels = [UInt8](repeating: 0, count: 2 * 16 * 16)
        for b in 0..<2 { for y in 0..<16 { for x in 0..<16 {
            labels[(b * 16 + y) * 16 + x] = y < 4 + 5 * b ? 0 : (x < 6 + b ? 1 : (y == 12 ? 255 : 2))
        } } }
        let both = LabelBatch(batch: 2, height: 16, width: 16, values: labels)
        let n = head.lossNormalizer(labels: both)
        let seeds: [UInt64] = [0xA11CE, 0xB0B]
        func image(_ b: Int) -> ([Tensor], LabelBatch) {
            (features.map { $0.rows(b..<(b + 1)).clone() },
             LabelBatch(batch: 1, height: 16, width: 16, values: Array(labels[(b * 256)..<((b + 1) * 256)])))
        }
        func run(_ f: [Tensor], _ l: LabelBatch, seeds: [UInt64]?) -> (sum: Double, dFeatures: [Tensor]) {
            head.zeroGradients()
            head.pointSeeds = seeds
            let sum = head.forwardLoss(features: f, grid: grid, labels: l, normalizer: n).sum
            XCTAssertNil(head.pointSeeds)
            let d = f.map { Tensor(zeros: $0.shape) }
            head.backwardLoss(dFeatures: d)
            return (sum, d)
        }
        let whole = run(features, both, seeds: seeds)
        let parts = (0..<2).map { b -> (sum: Double, dFeatures: [Tensor]) in
            let (f, l) = image(b)
            return run(f, l, seeds: [seeds[b]])
        }
        XCTAssertEqual(whole.sum, parts[0].sum + parts[1].sum, accuracy: 1e-5 * abs(whole.sum))
        for j in 0..<4 {
            let joined = Tensor(zeros: whole.dFeatures[j].shape)
            for b in 0..<2 { joined.rows(b..<(b + 1)).copy(from: parts[b].dFeatures[j]) }
            XCTAssertLessThan(relativeError(joined, whole.dFeatures[j]), 1e-5)
        }
        // The same seeds draw the same points again.
        XCTAssertEqual(run(features, both, seeds: seeds).sum, whole.sum)
        // One generator for everything: image 1 alone draws image 0's points — another loss.
        let start = head.rng
        let shared = run(features, both, seeds: nil).sum
        let sharedParts = (0..<2).map { b -> Double in
            head.rng = start
            let (f, l) = image(b)
            return run(f, l, seeds: nil).sum
        }
        XCTAssertGreaterThan(abs(shared - sharedParts[0] - sharedParts[1]), 1e-3 * abs(shared))
    }

    func testDebugSyntheticConfigSelectsMask2Former() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let config = try ExperimentConfig.load(path: root.appendingPathComponent("configs/debug-synthetic-m2f.yaml").path)
        XCTAssertEqual(config.model.head.type, .mask2former)
    }
}
