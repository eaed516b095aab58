import Foundation
import Heads
import Numerics
import PEFT
import Training
import XCTest

/// The network's adapter comes from `PEFTRegistry`: for every method it is the layer set the
/// network built before the registry (the Causal-Tune layer from the same seed), attached to
/// the backbone, and linked to the mask2former queries when it has tokens.
final class PEFTNetworkTests: XCTestCase {
    private func network(method: String, recompute: Bool = true) throws -> SegmentationNetwork {
        try tinyNetwork(method: method, head: "mask2former", tokens: 6, recompute: recompute, seed: 3)
    }

    func testNetworkAdapterIsTheLayerItBuiltBefore() throws {
        for method in ["causal_tune", "rein"] {
            let net = try network(method: method)
            let adapter = try XCTUnwrap(net.adapter as? CausalTuneAdapter, method)
            XCTAssertTrue(net.backbone.adapter === adapter, method)
            XCTAssertTrue(adapter.sharesOneCache, "recompute on: one cache for all layers")
            // What the network's initialiser made before the registry: the layer from the
            // first draw of the network's trainable generator.
            var rng = RandomGenerator(seed: 3 &+ 0x5EED)
            let before = try CausalTuneAdapter(options: net.config.model.peft, layers: 12, channels: 192, patchSize: 14,
                                               seed: rng.next())
            let peft = net.trainableParameters.filter { $0.name.hasPrefix("peft/") }
            XCTAssertEqual(peft.map(\.name), before.trainableParameters.map(\.name), method)
            for (a, b) in zip(peft, before.trainableParameters) {
                XCTAssertEqual(a.parameter.value.array, b.parameter.value.array, "\(method) \(a.name)")
            }
            // Rein's token → query link: one query per token.
            let m2f = try XCTUnwrap(net.head as? Mask2FormerDecodeHead)
            XCTAssertEqual(m2f.head.queries, 6)
            XCTAssertGreaterThan(net.trainableCounts.link, 0)
        }
        XCTAssertFalse(try XCTUnwrap(try network(method: "rein", recompute: false).adapter).sharesOneCache)
    }

    func testMethodNoneHasNoAdapterAndLearnedQueries() throws {
        let net = try network(method: "none")
        XCTAssertNil(net.adapter)
        XCTAssertNil(net.backbone.adapter)
        XCTAssertEqual(net.trainableCounts.peft, 0)
        XCTAssertEqual(net.trainableCounts.link, 0)
        XCTAssertEqual(try XCTUnwrap(net.head as? Mask2FormerDecodeHead).head.queries, 100)
    }
}

/// A network on the tiny random DINOv2 (12 blocks, C = 192) at 28×28, out_indices 2, 5, 8, 11
/// and 19 classes.
func tinyNetwork(method: String = "causal_tune", head: String, tokens: Int, loraRank: Int? = nil,
                 recompute: Bool = false, seed: UInt64 = 0) throws -> SegmentationNetwork {
    let yaml = """
    model:
      backbone: {arch: dinov2_vitt14, weights: random, image_size: 28, patch_size: 14, recompute: \(recompute)}
      peft: {method: \(method), tokens: \(tokens), lora_rank: \(loraRank.map { "\($0)" } ?? "null")}
      head: {type: \(head), out_indices: [2, 5, 8, 11], num_classes: 19}
    data:
      train: {dataset: synthetic, root: data/synthetic, split: train, domain: source}
      val: []
      crop_size: 28
    train: {seed: 0, iters: 1, batch_size: 2}
    """
    return try SegmentationNetwork(config: try ExperimentConfig.parse(yaml: yaml), seed: seed)
}
