import Foundation
import Numerics
import Training
import XCTest

/// Evaluation with the mask2former head runs the windows of an image as one batch
/// (`SegmentationNetwork.evaluationBatch`): the labels must be those of one window at a time,
/// the logits equal up to the rounding of products of another shape.
final class Mask2FormerEvaluationTests: XCTestCase {
    private func network() throws -> SegmentationNetwork {
        let yaml = """
        model:
          backbone: {arch: dinov2_vitt14, weights: random, image_size: 56, patch_size: 14}
          peft: {method: causal_tune, tokens: 12}
          head: {type: mask2former, out_indices: [2, 5, 8, 11], num_classes: 19}
        data:
          train: {dataset: synthetic, root: data/synthetic, split: train, domain: source}
          val: []
          crop_size: 56
        train: {seed: 0, iters: 1, batch_size: 2}
        """
        return try SegmentationNetwork(config: try ExperimentConfig.parse(yaml: yaml), seed: 3)
    }

    private func compare(_ net: SegmentationNetwork, n: Int, h: Int, w: Int, seed: UInt64) throws {
        var rng = RandomGenerator(seed: seed)
        let windows = Tensor(zeros: [n, 3, h, w]); rng.fillNormal(windows)
        let batched = try net.logits(window: windows)
        XCTAssertEqual(batched.shape, [n, 19, h, w])
        let plane = 19 * h * w
        // A label may differ only at a near-tie: where the single window's two classes are
        // within the logit bound (another CPU's BLAS kernels round the batch otherwise).
        var maxDiff: Float = 0, maxAbs: Float = 0, labelsDiffer = 0, widestDifferingGap: Float = 0
        for b in 0..<n {
            let one = Tensor(zeros: [1, 3, h, w])
            one.data.update(from: windows.data + b * 3 * h * w, count: 3 * h * w)
            let single = try net.logits(window: one)
            for i in 0..<plane {
                maxDiff = max(maxDiff, abs(single.data[i] - batched.data[b * plane + i]))
                maxAbs = max(maxAbs, abs(single.data[i]))
            }
            for p in 0..<(h * w) {
                var (a, ka, c, kc) = (-Float.infinity, 0, -Float.infinity, 0)
                for k in 0..<19 {
                    let s = single.data[k * h * w + p], t = batched.data[b * plane + k * h * w + p]
                    if s > a { a = s; ka = k }
                    if t > c { c = t; kc = k }
                }
                if ka != kc {
                    labelsDiffer += 1
                    widestDifferingGap = max(widestDifferingGap, a - single.data[kc * h * w + p])
                }
            }
        }
        print("mask2former batched windows n \(n), \(h)x\(w): max |Δlogit| \(maxDiff) (max |logit| \(maxAbs)), labels differing: \(labelsDiffer)")
        XCTAssertLessThanOrEqual(maxDiff, 1e-5 * maxAbs, "n \(n), \(h)x\(w): max |Δlogit| \(maxDiff) of \(maxAbs)")
        XCTAssertLessThanOrEqual(widestDifferingGap, 2e-5 * maxAbs,
                                 "n \(n), \(h)x\(w): \(labelsDiffer) labels differ, one beyond a tie")
    }

    func testBatchedWindowsGiveTheLabelsOfSingleWindows() throws {
        let net = try network()
        XCTAssertEqual(net.evaluationBatch, 8)
        try compare(net, n: 5, h: 56, w: 56, seed: 1)
        try compare(net, n: 2, h: 40, w: 56, seed: 2)    // zero-padded to 56×56 and cropped back
    }
}
