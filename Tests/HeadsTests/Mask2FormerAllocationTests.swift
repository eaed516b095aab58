import XCTest
import Numerics
import Layers
import Heads

/// The head runs on buffers kept from step to step: after the first step its forward, loss
/// and backward allocate no tensors, and reusing the buffers leaves the numbers of a step
/// unchanged. (The loss's work buffers depend on the number of matched masks; they grow
/// only when a step matches more than any before, which identical steps do not.)
final class Mask2FormerAllocationTests: XCTestCase {
    func testHeadStepsAllocateNoTensorsOnceWarmAndRepeatExactly() {
        var rng = RandomGenerator(seed: 61)
        let head = Mask2FormerHead(inputChannels: 8, backboneChannels: 8, numClasses: 3, channels: 32, queries: 4,
                                   decoderLayers: 3, heads: 4, encoderLayers: 2, points: 2,
                                   encoderFeedforward: 48, decoderFeedforward: 64, groups: 8)
        head.reset(rng: &rng)
        head.setRequiresGrad(true)
        head.criterion.settings.points = 64
        let B = 2, H = 32, W = 32
        let features = [8, 4, 2, 1].map { s in randomTensor([B, 8, 4 * s, 4 * s], &rng) }
        let tokens = randomTensor([3, 4, 8], &rng)
        var labels = [UInt8](repeating: 0, count: B * H * W)
        for i in labels.indices { labels[i] = UInt8([0, 1, 2, 255][(i / 29) % 4]) }
        let targets = (0..<B).map { b in
            labels[(b * H * W)..<((b + 1) * H * W)].withUnsafeBufferPointer {
                MaskTargets(labels: $0, height: H, width: W, numClasses: 3)
            }
        }
        let dFeatures = features.map { Tensor(zeros: $0.shape) }
        let dTokens = Tensor(zeros: tokens.shape)

        var forwardCounts: [Int] = [], lossCounts: [Int] = [], backwardCounts: [Int] = []
        var results: [(loss: Double, values: [Float])] = []
        for _ in 0..<3 {
            head.zeroGrad()
            for d in dFeatures { d.zero() }
            dTokens.zero()
            var before = TensorStorage.allocationCount
            let predictions = head.forward(features: features, tokens: tokens)
            forwardCounts.append(TensorStorage.allocationCount - before)
            // The same points every step, so that every step computes the same numbers.
            var pointRng = RandomGenerator(seed: 7)
            before = TensorStorage.allocationCount
            let terms = head.loss(targets: targets, normalizer: 4, rng: &pointRng)
            lossCounts.append(TensorStorage.allocationCount - before)
            before = TensorStorage.allocationCount
            head.backward(dFeatures: dFeatures, dTokens: dTokens)
            backwardCounts.append(TensorStorage.allocationCount - before)
            var values = predictions.last!.maskLogits.array + dTokens.array
            for d in dFeatures { values += d.array }
            for p in head.namedParameters { values += p.parameter.grad!.array }
            results.append((terms.total, values))
        }
        print("Mask2FormerHead tensor allocations per step: forward \(forwardCounts), loss \(lossCounts), backward \(backwardCounts)")
        XCTAssertGreaterThan(forwardCounts[0], 0, "the first step allocates the buffers it keeps")
        XCTAssertEqual(Array(forwardCounts.dropFirst()), [0, 0])
        XCTAssertEqual(Array(lossCounts.dropFirst()), [0, 0])
        XCTAssertEqual(Array(backwardCounts.dropFirst()), [0, 0])
        XCTAssertTrue(results[0].loss.isFinite && results[0].loss > 0)
        for r in results.dropFirst() {
            XCTAssertEqual(r.loss, results[0].loss)
            XCTAssertEqual(r.values, results[0].values)
        }
    }
}
