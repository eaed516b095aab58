import Backbone
import Distributed
import Foundation
import Numerics
import PEFT
import Training
import XCTest

/// `causal-tune bench`'s measuring code: the FLOP count against a count done by hand, and
/// a 2-step run of a tiny model whose JSON carries reference §Command line's keys with finite positive values.
final class BenchmarkTests: XCTestCase {
    static let yaml = """
    model:
      backbone: {arch: dinov2_vitt14, weights: random, image_size: 28, patch_size: 14, recompute: false}
      peft: {method: causal_tune, tokens: 3, transform: dct, filter: {mode: bandpass, shape: gaussian, low: 0.2, high: 0.7}}
      head: {type: linear, out_indices: [11], num_classes: 19}
    data:
      train: {dataset: synthetic, root: /nonexistent, split: train, domain: source}
      val: []
      crop_size: 28
    train: {seed: 0, iters: 1, batch_size: 2, optimizer: adamw, lr: 0.001}
    output: {work_dir: /tmp/unused}
    """

    /// dinov2_vitt14 (C 192, 12 blocks, MLP 768), 28×28 with patch 14: grid 2×2, N 4, T 5,
    /// batch 2; 3 tokens, DCT; linear head on one block, 19 classes. Counted by hand:
    ///   patch embed 2·2·4·192·(3·14·14)                                    =   1 806 336
    ///   block linears 2·2·5·192·(3·192 + 192 + 2·768) = 8 847 360, attention fwd 2·(2·2·25·192) = 38 400
    ///   backbone forward 12·(8 847 360 + 38 400)                           = 106 629 120
    ///   backbone backward 11·(8 847 360 + 2·38 400) (blocks 11…1)          =  98 165 760
    ///   DCT per image 2·4·192·(2+2) = 6 144; rows 8
    ///   PEFT forward per layer: f_t 2·2·192² 147 456 + T 2·2·6 144 24 576 + QTᵀ 2·8·3·192 9 216
    ///     + SV 2·8·2·192 6 144 + f_d 2·8·192² 589 824 + T⁻¹ 24 576 = 801 792; ×12 = 9 621 504
    ///   PEFT backward per layer: T 24 576 + f_d 4·8·192² 1 179 648 + 4·8·2·192 12 288
    ///     + 4·8·3·192 18 432 + f_t 4·2·192² 294 912 + T⁻¹ 24 576 = 1 554 432; ×12 = 18 653 184
    ///   head forward 2·8·192·19 = 58 368, backward 116 736
    func testFLOPCountOfATinyConfigurationEqualsTheHandCount() throws {
        let cfg = try ExperimentConfig.parse(yaml: BenchmarkTests.yaml)
        let opts = cfg.model.peft
        let f = StepFLOPs.count(architecture: try BackboneArchitecture.named("dinov2_vitt14"), imageSize: 28, patchSize: 14,
                                batch: 2, recompute: false, peft: opts, headClasses: 19, headOutputs: 1)
        XCTAssertEqual(f.patchEmbed, 1_806_336)
        XCTAssertEqual(f.backboneForward, 106_629_120)
        XCTAssertEqual(f.backboneBackward, 98_165_760)
        XCTAssertEqual(f.peftForward, 9_621_504)
        XCTAssertEqual(f.peftBackward, 18_653_184)
        XCTAssertEqual(f.headForward, 58_368)
        XCTAssertEqual(f.headBackward, 116_736)
        XCTAssertEqual(f.total, 235_051_008)
        // Recompute adds the block forward and the adapter forward once more.
        let r = StepFLOPs.count(architecture: try BackboneArchitecture.named("dinov2_vitt14"), imageSize: 28, patchSize: 14,
                                batch: 2, recompute: true, peft: opts, headClasses: 19, headOutputs: 1)
        XCTAssertEqual(r.total, 235_051_008 + 106_629_120 + 9_621_504)
    }

    func testTwoStepBenchmarkWritesSpecKeysWithPositiveFiniteValues() throws {
        let cfg = try ExperimentConfig.parse(yaml: BenchmarkTests.yaml)
        let bench = try TrainingBenchmark(config: cfg, communicator: SingleProcessCommunicator())
        let result = bench.run(steps: 2, warmup: 1, peakSize: 128, peakRepeats: 2)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(result.json.utf8)) as? [String: Any])
        for key in ["step_s_median", "images_per_s", "gflop_per_step", "gflops", "sgemm_peak_gflops", "peak_rss_mb"] {
            let v = try XCTUnwrap(object[key] as? Double, key)
            XCTAssert(v.isFinite && v > 0, "\(key) = \(v)")
        }
        XCTAssertEqual(object["gflop_per_step"] as? Double ?? 0, 0.235051008, accuracy: 1e-12)
        let split = try XCTUnwrap(object["split_s"] as? [String: Double])
        XCTAssertEqual(Set(split.keys), ["data", "backbone_forward", "peft_forward", "head_forward", "head_backward",
                                         "peft_backward", "backbone_backward", "allreduce", "optimizer"])
        for (k, v) in split { XCTAssert(v.isFinite && v >= 0, "split \(k) = \(v)") }
        XCTAssertEqual(result.stepSeconds.count, 2)
        // The parts add up to the step (median of sums vs sum of medians: within the spread).
        XCTAssertLessThanOrEqual(split.values.reduce(0, +), 1.5 * result.stepSeconds.max()!)
        XCTAssertEqual(object["allreduce_bytes"] as? Int, bench.parameters.count * 4)
    }

    func testScalingReportOfATinyModelHasTheModelledAndMeasuredThreads() throws {
        let cfg = try ExperimentConfig.parse(yaml: BenchmarkTests.yaml)
        let bench = try TrainingBenchmark(config: cfg, communicator: SingleProcessCommunicator())
        let cores = Parallel.threads
        let report = bench.scaling(modelThreads: [4, 16], steps: 1, warmup: 0, modelSteps: 1)
        XCTAssertEqual(Parallel.threads, cores)
        XCTAssertEqual(report.measured.first?.threads, 1)
        XCTAssertEqual(report.measured.last?.threads, cores)
        let modelled = Set([4, 16]).union(report.measured.map(\.threads).filter { $0 > 1 }).sorted()
        XCTAssertEqual(report.model.map(\.threads), modelled)
        for r in report.model {
            XCTAssert(r.predictedSeconds > 0 && r.predictedSeconds <= r.oneThreadSeconds * 1.0001, "T \(r.threads)")
            XCTAssert(r.efficiency > 0 && r.efficiency <= 1.0001, "T \(r.threads): \(r.efficiency)")
            XCTAssertEqual(r.kinds.map(\.key), ScalingReport.kinds.map(\.key))
            XCTAssertEqual(r.kinds.reduce(0) { $0 + $1.oneThreadSeconds }, r.oneThreadSeconds, accuracy: 1e-9)
            XCTAssertEqual(r.kinds.reduce(0) { $0 + $1.predictedSeconds }, r.predictedSeconds, accuracy: 1e-9)
            XCTAssertGreaterThan(r.kinds[0].regions, 0, "products")
        }
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(report.json.text.utf8)) as? [String: Any])
        XCTAssertEqual((json["model"] as? [Any])?.count, modelled.count)
        XCTAssertTrue(report.table.contains("a model, not a measurement"))
    }

    func testRegionKindsFollowTheCallSite() {
        XCTAssertEqual(ScalingReport.kind(ofSite: "Numerics/BLAS.swift"), "products")
        XCTAssertEqual(ScalingReport.kind(ofSite: "Numerics/PanelProduct.swift"), "products")
        XCTAssertEqual(ScalingReport.kind(ofSite: "Layers/Attention.swift"), "attention")
        XCTAssertEqual(ScalingReport.kind(ofSite: "PEFT/CausalTuneAdapter.swift"), "causal_tune")
        XCTAssertEqual(ScalingReport.kind(ofSite: "Heads/LinearHead.swift"), "head")
        XCTAssertEqual(ScalingReport.kind(ofSite: "Training/Optimizer.swift"), "optimizer")
        XCTAssertEqual(ScalingReport.kind(ofSite: "Numerics/LayerNormKernel.swift"), "kernels")
        XCTAssertEqual(ScalingReport.kind(ofSite: "Training/Benchmark.swift"), "other")
    }

    /// `CAUSAL_TUNE_PRODUCTS` through the CLI: `panels` is reported (text and JSON), a name
    /// that is neither kernel is one line and exit status 2.
    func testProductKernelFromTheEnvironmentIsReportedOrRefused() throws {
        let dir = NSTemporaryDirectory() + "ct-products-\(getpid())-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try BenchmarkTests.yaml.write(toFile: dir + "/tiny.yaml", atomically: true, encoding: .utf8)
        let args = ["bench", "--config", dir + "/tiny.yaml", "--steps", "1", "--warmup", "0", "--peak-size", "64",
                    "--json", dir + "/bench.json"]
        let r = try CommandLineRunner.run(args, environmentChanges: ["CAUSAL_TUNE_PRODUCTS": "panels"])
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(r.output.contains("products: our panel kernel"), r.output)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/bench.json")))
                                 as? [String: Any])
        XCTAssertEqual(json["product_kernel"] as? String, "panels")
        let bad = try CommandLineRunner.run(args, environmentChanges: ["CAUSAL_TUNE_PRODUCTS": "mkl"])
        XCTAssertEqual(bad.status, 2, bad.output)
        let lines = bad.output.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, bad.output)
        XCTAssertTrue(bad.output.contains("CAUSAL_TUNE_PRODUCTS: 'mkl'"), bad.output)
    }

    func testBenchRefusesABadModelThreadsList() throws {
        for bad in ["0", "8,x", "5000", "", "8,,16", "-2"] {
            let r = try CommandLineRunner.run(["bench", "--config", "/nonexistent.yaml", "--model-threads=\(bad)"])
            XCTAssertNotEqual(r.status, 0, r.output)
            XCTAssertTrue(r.output.contains("--model-threads"), "\(bad): \(r.output)")
        }
    }
}
