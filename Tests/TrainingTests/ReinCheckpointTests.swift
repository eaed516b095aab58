import Backbone
import Core
import Foundation
import Numerics
import RunIO
import Training
import XCTest

/// PyTorch-world checkpoints in and out (`ReinCheckpoint`, `causal-tune export`), against
/// the committed fixtures of `Fixtures/rein/make_rein_fixtures.py` (no torch needed here):
/// Rein / mmseg `.pth` files (full and LoRA tokens) must give the logits of our checkpoint
/// holding the same values, bit for bit; export → import must give back every value bit for
/// bit; truncated, foreign and official-Causal-Tune files are one line each.
final class ReinCheckpointTests: XCTestCase {
    private let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/rein").path
    private var dir = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "ct-rein-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    /// The fixtures' model: tiny random ViT (C 192, 12 blocks), Rein with 4 tokens, linear head.
    private func config(lora: Int?, head: String = "linear", method: String = "rein") throws -> ExperimentConfig {
        let outIndices = head == "mask2former" ? ", out_indices: [2, 5, 8, 11]" : ""
        return try ExperimentConfig.parse(yaml: """
        model:
          backbone: {arch: dinov2_vitt14, weights: random, image_size: 28, patch_size: 14}
          peft: {method: \(method), tokens: 4, lora_rank: \(lora.map(String.init) ?? "null")}
          head: {type: \(head), num_classes: 19\(outIndices)}
        data:
          train: {dataset: folder, root: \(dir)/none, split: train}
          val: []
          crop_size: 28
        train: {seed: 7}
        output: {work_dir: \(dir)/work}
        """)
    }

    private func bits(_ t: Tensor) -> [UInt32] { (0..<t.count).map { t.data[$0].bitPattern } }

    func testReinCheckpointGivesTheLogitsOfTheNativeCheckpointBitForBit() throws {
        var input = Tensor(zeros: [1, 3, 28, 28])
        var rng = RandomGenerator(seed: 11)
        input = Tensor(shape: [1, 3, 28, 28], values: (0..<(3 * 28 * 28)).map { _ in Float(rng.uniform(-2, 2)) })
        for (kind, lora) in [("full", nil), ("lora", 4)] as [(String, Int?)] {
            let cfg = try config(lora: lora)
            var logits: [[UInt32]] = []
            for file in ["rein_\(kind).pth", "native_\(kind).h5"] {
                let net = try SegmentationNetwork(config: cfg, seed: 7)
                let set = ParameterSet(net.trainableParameters)
                try ReinCheckpoint.loadAny("\(fixtures)/\(file)", into: set, signature: net.signature, method: "rein",
                                           log: RunLog.silent())
                logits.append(bits(try net.logits(window: input)))
            }
            XCTAssertEqual(logits[0], logits[1], "\(kind): logits of the .pth and of the native checkpoint differ")
            // And the values did arrive (not the seeded initialisation).
            let fresh = try SegmentationNetwork(config: cfg, seed: 7)
            XCTAssertNotEqual(bits(try fresh.logits(window: input)), logits[0], kind)
        }
    }

    func testWrongTokenFormIsOneLineNamingTheSetting() throws {
        let cfg = try config(lora: nil)
        let net = try SegmentationNetwork(config: cfg, seed: 7)
        XCTAssertThrowsError(try ReinCheckpoint.loadAny("\(fixtures)/rein_lora.pth", into: ParameterSet(net.trainableParameters),
                                                        signature: net.signature, method: "rein", log: .silent())) { e in
            let m = (e as? CausalTuneError)?.message ?? "\(e)"
            XCTAssertTrue(m.contains("lora_rank: 4"), m)
            XCTAssertFalse(m.contains("\n"), m)
        }
        let lora = try SegmentationNetwork(config: try config(lora: 8), seed: 7)
        XCTAssertThrowsError(try ReinCheckpoint.loadAny("\(fixtures)/rein_lora.pth", into: ParameterSet(lora.trainableParameters),
                                                        signature: lora.signature, method: "rein", log: .silent())) { e in
            let m = (e as? CausalTuneError)?.message ?? "\(e)"
            XCTAssertTrue(m.contains("learnable_tokens_a") && m.contains("shape"), m)
        }
    }

    func testTruncatedForeignAndOfficialCausalTuneFilesAreRefusedInOneLine() throws {
        let truncated = dir + "/truncated.pth"
        let bytes = try Data(contentsOf: URL(fileURLWithPath: "\(fixtures)/rein_full.pth"))
        try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: truncated))
        let net = try SegmentationNetwork(config: try config(lora: nil), seed: 7)
        let cases: [(String, String)] = [(truncated, "truncated"), ("\(fixtures)/foreign.pth", "not a Rein"),
                                         ("\(fixtures)/official_causal_tune.pth", "official Causal-Tune")]
        for (path, words) in cases {
            XCTAssertThrowsError(try ReinCheckpoint.loadAny(path, into: ParameterSet(net.trainableParameters), signature: net.signature,
                                                            method: "rein", log: .silent())) { e in
                let m = (e as? CausalTuneError)?.message ?? "\(e)"
                XCTAssertTrue(m.contains(path) && m.contains(words), m)
                XCTAssertFalse(m.contains("\n"), m)
            }
        }
    }

    /// Every value of a Mask2Former checkpoint (PEFT with the token → query link, the whole
    /// head) and of a linear one goes out through `export` and back through the importer
    /// bit for bit, in both formats; `peft/scale` becomes Rein's 0-d tensor.
    func testExportThenImportRoundTripsBitForBit() throws {
        try CommandLineRunner.requireBinary()
        for (head, lora) in [("mask2former", 4), ("mask2former", nil), ("linear", nil)] as [(String, Int?)] {
            let cfg = try config(lora: lora, head: head)
            let net = try SegmentationNetwork(config: cfg, seed: 3)
            let set = ParameterSet(net.trainableParameters)
            // Distinct values everywhere (zero-initialised parameters included).
            var rng = RandomGenerator(seed: 5)
            for i in 0..<set.values.count { set.values.data[i] = Float(rng.uniform(-1, 1)) }
            let native = "\(dir)/native_\(head).h5"
            try Checkpoint.write(to: native, metadata: .init(step: 9, worldSize: 1, config: cfg.yaml, rngState: [1, 2, 3, 4],
                                                             optimizer: "adamw", backboneWeights: "random", backboneSHA256: "",
                                                             signature: net.signature),
                                 parameters: set, optimizer: nil)
            for format in ["mmseg", "safetensors"] {
                let out = "\(dir)/export_\(head).\(format == "mmseg" ? "pth" : "safetensors")"
                let (status, text) = try CommandLineRunner.run(["export", "--checkpoint", native, "--format", format, "--out", out])
                XCTAssertEqual(status, 0, text)
                let file = try WeightFile.read(out)
                XCTAssertEqual(file.tensors["backbone.reins.scale"]?.shape, [], "\(head) \(format)")
                XCTAssertEqual(file.names.count, set.entries.count, "\(head) \(format)")
                let back = try ReinCheckpoint.read(out, expected: set.entries.map { ($0.name, $0.shape) })
                for e in set.entries {
                    XCTAssertEqual(back[e.name].map(bits), bits(e.value), "\(head) \(format) \(e.name)")
                }
            }
        }
    }
}
