import XCTest
import Numerics
import Layers
import Heads

final class Mask2FormerHeadTests: XCTestCase {
    func testWholeHeadMatchesPyTorchForwardLossGradientsAndInference() throws {
        let fx = try loadFixture("mask2former_head")
        let cfg = fx["config"] as! [String: Any]
        let int = { (k: String) in cfg[k] as! Int }
        let head = Mask2FormerHead(inputChannels: int("CIN"), backboneChannels: int("CB"), numClasses: int("K"),
                                   channels: int("D"), queries: int("Q"), decoderLayers: int("dec"), heads: int("heads"),
                                   encoderLayers: int("enc"), points: int("points"), encoderFeedforward: int("ffe"),
                                   decoderFeedforward: int("ffd"), groups: int("G"))
        var settings = Mask2FormerLossSettings()
        settings.points = int("P")
        head.criterion.settings = settings
        let params = fx["params"] as! [String: Any]
        XCTAssertEqual(Set(head.namedParameters.map(\.name)), Set(params.keys))
        for p in head.namedParameters { p.parameter.value.copy(from: tensor(params[p.name])) }
        head.setRequiresGrad(true)
        head.zeroGrad()

        let features = (fx["features"] as! [Any]).map { tensor($0) }
        let tokens = tensor(fx["tokens"])
        let preds = head.forward(features: features, tokens: tokens)
        XCTAssertEqual(preds.count, int("dec") + 1)
        XCTAssertLessThan(relativeError(preds.last!.classLogits, tensor(fx["class_logits_last"])), 1e-4)
        XCTAssertLessThan(relativeError(preds.last!.maskLogits, tensor(fx["mask_logits_last"])), 1e-4)

        let labelsT = tensor(fx["labels"])
        let (B, H, W) = (labelsT.shape[0], labelsT.shape[1], labelsT.shape[2])
        let labels = labelsT.array.map { UInt8($0) }
        let targets = (0..<B).map { b in
            labels[(b * H * W)..<((b + 1) * H * W)].withUnsafeBufferPointer {
                MaskTargets(labels: $0, height: H, width: W, numClasses: int("K"))
            }
        }
        let points: [LossPointSource] = (fx["points"] as! [[String: Any]]).map {
            .given(matching: ($0["matching"] as! [Any]).map { tensor($0) }, candidates: tensor($0["candidates"]),
                   fresh: tensor($0["fresh"]))
        }
        var rng = RandomGenerator(seed: 0)
        let terms = head.loss(targets: targets, normalizer: Float(int("normalizer")), rng: &rng, points: points)
        let expected = fx["loss"] as! [Double]
        XCTAssertEqual(terms.classification, expected[0], accuracy: 1e-4 * expected[0])
        XCTAssertEqual(terms.mask, expected[1], accuracy: 1e-4 * expected[1])
        XCTAssertEqual(terms.dice, expected[2], accuracy: 1e-4 * expected[2])

        let dFeatures = features.map { Tensor(zeros: $0.shape) }
        let dTokens = Tensor(zeros: tokens.shape)
        head.backward(dFeatures: dFeatures, dTokens: dTokens)
        let grads = fx["grads"] as! [String: Any]
        var worst = (name: "", error: 0.0)
        for p in head.namedParameters {
            let e = relativeError(p.parameter.grad!, tensor(grads[p.name]))
            if e > worst.error { worst = (p.name, e) }
        }
        XCTAssertLessThan(worst.error, 1e-4, "worst parameter gradient: \(worst.name)")
        for (i, d) in (fx["dfeatures"] as! [Any]).enumerated() {
            XCTAssertLessThan(relativeError(dFeatures[i], tensor(d)), 1e-4, "feature \(i)")
        }
        XCTAssertLessThan(relativeError(dTokens, tensor(fx["dtokens"])), 1e-4)

        let sem = head.semanticLogits(size: (h: H, w: W))
        XCTAssertLessThan(relativeError(sem, tensor(fx["semantic"])), 1e-4)

        // Evaluation's forward (no class logits before the last prediction, the last alone
        // kept) and the tiled semantic logits give the same inference.
        let last = head.forward(features: features, tokens: tokens, inference: true)
        XCTAssertEqual(last.count, 1)
        XCTAssertLessThan(relativeError(last[0].classLogits, tensor(fx["class_logits_last"])), 1e-4)
        XCTAssertLessThan(relativeError(last[0].maskLogits, tensor(fx["mask_logits_last"])), 1e-4)
        XCTAssertLessThan(relativeError(head.semanticLogits(size: (h: H, w: W)), tensor(fx["semantic"])), 1e-4)
    }
}
