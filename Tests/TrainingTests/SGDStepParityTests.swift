import Core
import Distributed
import Foundation
import HDF5
import Numerics
import Training
import XCTest

/// Issue 6, "gradient parity": from a reference §Files `--init` checkpoint and backbone weights, one
/// step of `train.optimizer: sgd` (no momentum, weight_decay 0) with `augment: none` on one
/// image/label pair of a `dataset: folder` moves every trainable parameter by −lr × PyTorch's
/// gradient; the step-1 checkpoint (`checkpoint_every: 1`) holds the result.
///
/// The reference is Fixtures/make_sgd_step_fixture.py (timm DINOv2 blocks + an independent
/// reference §Causal-Tune layer Causal-Tune + reference §Heads linear head and loss, float64 autograd). The run goes
/// through the same public path as `causal-tune train --config FILE --init CKPT`
/// (`ExperimentConfig.load` → `Trainer` → `run`), and the step-1 checkpoint is read back
/// from disk. For each trainable tensor, with Δ = θ₁ − θ₀ and g the reference gradient:
///
///     tensor:   ‖Δ/(−lr) − g‖ / ‖g‖                       < 1e-3
///     element:  |Δ_i/(−lr) − g_i| ≤ 1e-3·|g_i| + 1e-4·max_j |g_j|
///
/// The backbone (`dinov2_vitt14`, 21 MB) is not committed: both sides compute its weights
/// from the same integer-hash formula (`FormulaWeights`), and this test writes them to an
/// HDF5 weights file first, checking a per-tensor checksum written by the generator.
final class SGDStepParityTests: XCTestCase {
    static let lr = 1.5
    private var dir = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "ct-sgd-parity-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    static var fixtures: String {
        Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.path + "/sgd_step"
    }

    // MARK: the backbone weights formula (mirrors make_sgd_step_fixture.py)

    enum FormulaWeights {
        static let patch = 14

        static func fnv1a(_ name: String) -> UInt32 {
            var h: UInt32 = 2_166_136_261
            for b in name.utf8 { h = (h ^ UInt32(b)) &* 16_777_619 }
            return h
        }

        /// `base + amplitude · k / 1024`, `k ∈ [−1024, 1023]` from a 32-bit hash of (name, i).
        static func values(_ name: String, count: Int) -> [Float] {
            let (base, amplitude) = law(name)
            let seed = fnv1a(name)
            return (0..<count).map { i in
                var x = UInt32(truncatingIfNeeded: i) &* 2_654_435_761 &+ seed
                x ^= x >> 16
                x = x &* 0x7FEB_352D
                x ^= x >> 15
                x = x &* 0x846C_A68B
                x ^= x >> 16
                let k = Int(x >> 21) - 1024
                return Float(base + amplitude * Double(k) / 1024)
            }
        }

        static func law(_ name: String) -> (Double, Double) {
            if name == "cls_token" || name == "pos_embed" { return (0, 0.5) }
            if name == "mask_token" { return (0, 0) }
            if name == "patch_embed.proj.weight" { return (0, 1.0 / 32) }
            if name.hasSuffix("ls1.gamma") || name.hasSuffix("ls2.gamma") { return (0.25, 1.0 / 8) }
            if name.contains("norm") && name.hasSuffix(".weight") { return (1, 1.0 / 8) }
            if name.hasSuffix("qkv.weight") { return (0, 1.0 / 8) }
            if name.hasSuffix("fc2.weight") { return (0, 1.0 / 32) }
            if name.hasSuffix(".weight") { return (0, 1.0 / 16) }
            return (0, 1.0 / 32)
        }

        /// Official DINOv2 names and shapes, in the generator's order (`dinov2_vitt14`, a
        /// 4×4 position grid).
        static func shapes(channels c: Int = 192, depth: Int = 12, storedGrid: Int = 4) -> [(String, [Int])] {
            var s: [(String, [Int])] = [("cls_token", [1, 1, c]), ("pos_embed", [1, 1 + storedGrid * storedGrid, c]),
                                        ("mask_token", [1, c]), ("patch_embed.proj.weight", [c, 3, patch, patch]),
                                        ("patch_embed.proj.bias", [c])]
            for i in 0..<depth {
                let p = "blocks.\(i)."
                s += [(p + "norm1.weight", [c]), (p + "norm1.bias", [c]),
                      (p + "attn.qkv.weight", [3 * c, c]), (p + "attn.qkv.bias", [3 * c]),
                      (p + "attn.proj.weight", [c, c]), (p + "attn.proj.bias", [c]),
                      (p + "ls1.gamma", [c]),
                      (p + "norm2.weight", [c]), (p + "norm2.bias", [c]),
                      (p + "mlp.fc1.weight", [4 * c, c]), (p + "mlp.fc1.bias", [4 * c]),
                      (p + "mlp.fc2.weight", [c, 4 * c]), (p + "mlp.fc2.bias", [c]),
                      (p + "ls2.gamma", [c])]
            }
            return s + [("norm.weight", [c]), ("norm.bias", [c])]
        }

        /// Writes the weights (official names, flat HDF5) and checks them against the
        /// generator's checksums Σ_i w_i·(1 + i mod 13).
        static func write(to path: String, expected: HDF5File, channels: Int = 192, depth: Int = 12,
                          storedGrid: Int = 4) throws {
            let shapes = shapes(channels: channels, depth: depth, storedGrid: storedGrid)
            let names = try expected.attribute("names", of: "backbone_checksum")
            guard case .strings(let checkNames) = names else { return XCTFail("backbone_checksum has no names") }
            let sums = try expected.readArray("backbone_checksum", as: Double.self).values
            XCTAssertEqual(checkNames, shapes.map(\.0))
            let file = try HDF5File.create(path)
            for (j, (name, shape)) in shapes.enumerated() {
                let v = values(name, count: shape.reduce(1, *))
                var sum = 0.0
                for (i, x) in v.enumerated() { sum += Double(x) * Double(1 + i % 13) }
                if j < sums.count {
                    XCTAssertEqual(sum, sums[j], accuracy: 1e-9 * max(1, abs(sums[j])), "weights formula differs for \(name)")
                }
                try file.write(Tensor(shape: shape, values: v), to: name)
            }
            try file.close()
        }
    }

    // MARK: the run

    private func config(peft: String, weights: String, batch: Int = 1) -> String {
        """
        model:
          backbone: {arch: dinov2_vitt14, weights: \(weights), image_size: 42, patch_size: 14}
          peft: \(peft)
          head: {type: linear, num_classes: 19}
        data:
          train: {dataset: folder, root: \(SGDStepParityTests.fixtures)/data, split: train}
          val: []
          crop_size: 42
          augment: none
        train: {seed: 0, iters: 2, batch_size: \(batch), optimizer: sgd, lr: \(SGDStepParityTests.lr), weight_decay: 0,
                log_every: 1, eval_every: 0, checkpoint_every: 1, keep: 0}
        output: {work_dir: \(dir)/work}
        """
    }

    private func parameters(_ path: String) throws -> [String: Tensor] {
        let f = try HDF5File.open(path)
        var out: [String: Tensor] = [:]
        for p in try f.datasetPaths(under: "params") {
            let name = p.split(separator: "/").dropFirst().joined(separator: "/")
            out[name] = try f.readTensor(p)
        }
        return out
    }

    /// Per tensor: (name, ‖Δ/(−lr) − g‖/‖g‖, worst element excess over its tolerance).
    private func compare(checkpoint: String, initial: String, expected: HDF5File,
                         file: StaticString = #filePath, line: UInt = #line) throws -> [(String, Double, Double)] {
        let before = try parameters(initial), after = try parameters(checkpoint)
        let names = try expected.datasetPaths(under: "grad").map { $0.split(separator: "/").dropFirst().joined(separator: "/") }
        XCTAssertEqual(Set(after.keys), Set(names), "the trained set differs from the reference's", file: file, line: line)
        XCTAssertEqual(Set(before.keys), Set(names), file: file, line: line)
        var rows: [(String, Double, Double)] = []
        for name in names.sorted() {
            let g = try expected.readArray("grad/" + name, as: Double.self).values
            guard let p0 = before[name]?.array, let p1 = after[name]?.array, p0.count == g.count, p1.count == g.count else {
                XCTFail("\(name): missing or wrong size", file: file, line: line); continue
            }
            var diff = 0.0, norm = 0.0, gmax = 0.0
            for x in g { gmax = max(gmax, abs(x)) }
            var worstElement = 0.0
            for i in 0..<g.count {
                let step = (Double(p1[i]) - Double(p0[i])) / -SGDStepParityTests.lr
                let d = step - g[i]
                diff += d * d; norm += g[i] * g[i]
                worstElement = max(worstElement, abs(d) / (1e-3 * abs(g[i]) + 1e-4 * gmax))
            }
            let rel = (diff / max(norm, 1e-300)).squareRoot()
            XCTAssertGreaterThan(norm, 0, "\(name): the reference gradient is zero — the check would be vacuous", file: file, line: line)
            XCTAssertLessThan(rel, 1e-3, "\(name): ‖Δ/(−lr) − g‖/‖g‖ = \(rel)", file: file, line: line)
            XCTAssertLessThanOrEqual(worstElement, 1, "\(name): an element is off by \(worstElement)× its tolerance", file: file, line: line)
            rows.append((name, rel, worstElement))
        }
        return rows
    }

    private func runVariant(_ variant: String, peft: String) throws {
        let expected = try HDF5File.open("\(SGDStepParityTests.fixtures)/expected_\(variant).h5")
        let checks = try HDF5File.open("\(SGDStepParityTests.fixtures)/expected_causal_tune.h5")
        let weights = dir + "/dinov2_vitt14_formula.h5"
        try FormulaWeights.write(to: weights, expected: checks)
        try config(peft: peft, weights: weights).write(toFile: dir + "/step.yaml", atomically: true, encoding: .utf8)

        let start = Date()
        let initial = "\(SGDStepParityTests.fixtures)/init_\(variant).h5"
        let cfg = try ExperimentConfig.load(path: dir + "/step.yaml")
        let trainer = try Trainer(config: cfg, options: .init(initFrom: initial, quiet: true), communicator: SingleProcessCommunicator())
        try trainer.run()
        let seconds = Date().timeIntervalSince(start)

        let rows = try compare(checkpoint: dir + "/work/iter_1.h5", initial: initial, expected: expected)
        // The logged step-1 loss is the reference's mean cross-entropy over the valid pixels.
        let metrics = try String(contentsOfFile: dir + "/work/metrics.jsonl", encoding: .utf8)
        let first = try XCTUnwrap(metrics.split(separator: "\n").first)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(first.utf8)) as? [String: Any])
        let loss = try XCTUnwrap(json["loss"] as? Double)
        let refLoss = try expected.float64Attribute("loss")
        XCTAssertEqual(loss, refLoss, accuracy: 1e-4 * refLoss, "step-1 loss")
        XCTAssertEqual(try XCTUnwrap(json["lr"] as? Double), SGDStepParityTests.lr, accuracy: 1e-12, "step-1 lr (poly at 0)")

        var report = "\(variant): run \(String(format: "%.2f", seconds)) s, loss \(loss) (reference \(refLoss))\n"
        for (n, r, e) in rows { report += String(format: "  %-22@ rel %.2e  worst element %.2f of tol\n", n as NSString, r, e) }
        print(report)
    }

    /// The same step through the real CLI under `mpirun -np 2`: total batch 2 = the pair
    /// twice, one copy per rank; the global valid-pixel normaliser makes the summed
    /// gradient the mean over both copies, i.e. the same gradient.
    func testTwoRanksTakeTheSameStepThroughTheCLI() throws {
        try CommandLineRunner.requireBinary()
        let expected = try HDF5File.open("\(SGDStepParityTests.fixtures)/expected_causal_tune.h5")
        let weights = dir + "/dinov2_vitt14_formula.h5"
        try FormulaWeights.write(to: weights, expected: expected)
        try config(peft: "{method: causal_tune, tokens: 4, scale_init: 0.5}", weights: weights, batch: 2)
            .write(toFile: dir + "/step.yaml", atomically: true, encoding: .utf8)
        let initial = "\(SGDStepParityTests.fixtures)/init_causal_tune.h5"
        let (status, out) = try CommandLineRunner.run(["train", "--config", dir + "/step.yaml", "--init", initial], ranks: 2)
        XCTAssertEqual(status, 0, out)
        _ = try compare(checkpoint: dir + "/work/iter_1.h5", initial: initial, expected: expected)
        let f = try HDF5File.open(dir + "/work/iter_1.h5")
        XCTAssertEqual(try f.int64Attribute("world_size"), 2)
    }

    /// A parameters-only checkpoint (no step, no RNG state) loads with --init but is one
    /// clear error for --resume.
    func testResumeFromAParametersOnlyCheckpointIsOneClearError() throws {
        try config(peft: "{method: causal_tune, tokens: 4}", weights: "random")
            .write(toFile: dir + "/step.yaml", atomically: true, encoding: .utf8)
        let cfg = try ExperimentConfig.load(path: dir + "/step.yaml")
        let initial = "\(SGDStepParityTests.fixtures)/init_causal_tune.h5"
        XCTAssertThrowsError(try Trainer(config: cfg, options: .init(resume: initial, quiet: true),
                                         communicator: SingleProcessCommunicator())) { error in
            let message = (error as? CausalTuneError)?.message ?? "\(error)"
            XCTAssertTrue(message.contains("cannot be resumed") && message.contains("init_causal_tune.h5"), message)
        }
    }

    /// A config with only the keys such a check names (no `data.val`) trains: the default
    /// val set (Cityscapes in data/cityscapes) is not there, so the run skips evaluation.
    func testMinimalConfigWithoutValidationDataTrains() throws {
        let minimal = """
        model:
          backbone: {arch: dinov2_vitt14, weights: random, image_size: 42}
          peft: {tokens: 4}
        data:
          train: {dataset: folder, root: \(SGDStepParityTests.fixtures)/data}
          crop_size: 42
          augment: none
        train: {iters: 1, batch_size: 1, optimizer: sgd, lr: 0.5, weight_decay: 0, checkpoint_every: 1}
        output: {work_dir: \(dir)/work}
        """
        try minimal.write(toFile: dir + "/minimal.yaml", atomically: true, encoding: .utf8)
        let cwd = FileManager.default.currentDirectoryPath
        FileManager.default.changeCurrentDirectoryPath(dir)     // no data/cityscapes here
        defer { FileManager.default.changeCurrentDirectoryPath(cwd) }
        let cfg = try ExperimentConfig.load(path: dir + "/minimal.yaml")
        XCTAssertEqual(cfg.data.val.map(\.root), ["data/cityscapes"])
        let trainer = try Trainer(config: cfg, options: .init(initFrom: "\(SGDStepParityTests.fixtures)/init_causal_tune.h5"),
                                  communicator: SingleProcessCommunicator())
        XCTAssertNil(try trainer.run())
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/work/iter_1.h5"))
        let log = try String(contentsOfFile: dir + "/work/train.log", encoding: .utf8)
        XCTAssertTrue(log.contains("training without evaluation"), log)
    }

    /// The default Causal-Tune (DCT band-pass), full tokens.
    func testOneSGDStepMovesEveryParameterByMinusLrTimesPyTorchGradient() throws {
        try runVariant("causal_tune", peft: "{method: causal_tune, tokens: 4, scale_init: 0.5}")
    }

    /// Rein (identity transform, no filter) with low-rank tokens A·B.
    func testOneSGDStepMatchesPyTorchForReinWithLowRankTokens() throws {
        try runVariant("rein_lowrank", peft: "{method: rein, tokens: 4, lora_rank: 2, scale_init: 0.5}")
    }
}
