import Backbone
import ChildProcesses
import Foundation
import HDF5
import ImageIO
import Numerics
import Training
import XCTest

/// Nothing is lost in a run: the work directory lock, metrics on resume, pruning next to
/// stale checkpoints, best.h5 bookkeeping, skipped non-finite steps, a changed backbone on
/// resume, disk full — each through the real `causal-tune` binary.
final class RunSafetyTests: XCTestCase {
    private var dir = ""

    override func setUpWithError() throws {
        try CommandLineRunner.requireBinary()
        dir = NSTemporaryDirectory() + "ct-safety-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir + "/data/images", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: dir + "/data/labels", withIntermediateDirectories: true)
        var rng = RandomGenerator(seed: 5)
        for i in 0..<4 {
            var img = RGBImage(width: 28, height: 28)
            var lab = LabelMap(width: 28, height: 28)
            for p in 0..<(28 * 28) {
                lab.labels[p] = UInt8((p / 100 + i) % 19)
                for c in 0..<3 { img.pixels[p * 3 + c] = UInt8(rng.integer(below: 256)) }
            }
            try ImageIO.writePNG(img, to: dir + "/data/images/img\(i).png")
            try ImageIO.writePNG(lab, to: dir + "/data/labels/img\(i).png")
        }
        try config().write(toFile: dir + "/tiny.yaml", atomically: true, encoding: .utf8)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    private func config(weights: String = "random", iters: Int = 3, extraTrain: String = "") -> String {
        """
        model:
          backbone: {arch: dinov2_vitt14, weights: \(weights), image_size: 28, patch_size: 14}
          peft: {method: causal_tune, tokens: 4}
          head: {type: linear, num_classes: 19}
        data:
          train: {dataset: folder, root: \(dir)/data, split: train}
          val: [{dataset: folder, root: \(dir)/data, split: val, name: tiny}]
          crop_size: 28
          augment: none
        train: {seed: 1, iters: \(iters), batch_size: 2, lr: 0.001, log_every: 1, eval_every: 1, checkpoint_every: 1, keep: 2\(extraTrain)}
        """
    }

    @discardableResult
    private func train(_ work: String, _ extra: [String] = [], config: String = "tiny.yaml") throws -> (Int32, String) {
        try CommandLineRunner.run(["train", "--config", dir + "/" + config, "--work-dir", dir + "/" + work] + extra)
    }

    private func assertOneLineFailure(_ result: (Int32, String), _ fragments: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(result.0, 1, result.1, file: file, line: line)
        let errors = result.1.split(separator: "\n").filter { $0.hasPrefix("causal-tune") }
        XCTAssertEqual(errors.count, 1, result.1, file: file, line: line)
        for f in fragments { XCTAssertTrue(result.1.contains(f), "'\(f)' not in: \(result.1)", file: file, line: line) }
        XCTAssertFalse(result.1.contains("Fatal error") || result.1.contains("Segmentation") || result.1.contains("Stack dump"),
                       result.1, file: file, line: line)
    }

    func testSecondRunOnALockedWorkDirRefusesNamingTheHolder() throws {
        try FileManager.default.createDirectory(atPath: dir + "/locked", withIntermediateDirectories: true)
        let lock = try WorkDirectoryLock(workDir: dir + "/locked")
        assertOneLineFailure(try train("locked"), ["in use by process \(getpid())", dir + "/locked/.lock"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/locked/config.yaml"), "the refused run wrote nothing")
        lock.release()
        XCTAssertEqual(try train("locked").0, 0)
        // The lock is released when the run ends: it can be taken again.
        XCTAssertNoThrow(try WorkDirectoryLock(workDir: dir + "/locked").release())
    }

    func testResumeDropsLaterMetricsKeepsBestAndPrunesOnlyThisHistory() throws {
        XCTAssertEqual(try train("run").0, 0)
        let work = dir + "/run"
        // Every checkpoint carries the best score after its own evaluation.
        let last = try Checkpoint.Reader(path: work + "/iter_3.h5")
        let best = try Checkpoint.Reader(path: work + "/best.h5")
        XCTAssertEqual(last.extra("best_miou"), best.extra("miou"))
        XCTAssertEqual(last.extra("best_step").map { Int($0) }, best.metadata.step)
        // Resume from step 1 (keep: 2 pruned it, so write it back from a fresh run).
        XCTAssertEqual(try train("part", ["--set", "train.iters=1"]).0, 0)
        let before = try String(contentsOfFile: work + "/metrics.jsonl", encoding: .utf8)
        XCTAssertTrue(before.contains("\"step\": 3"))
        let bestBefore = try Data(contentsOf: URL(fileURLWithPath: work + "/best.h5"))
        XCTAssertEqual(try train("run", ["--resume", dir + "/part/iter_1.h5", "--set", "train.iters=2"]).0, 0)
        // Metrics: the lines of steps 2 and 3 of the first history were dropped before the
        // resumed run appended its own; every line parses.
        let lines = try String(contentsOfFile: work + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
        let steps = lines.compactMap { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any] }.compactMap { $0["step"] as? Int }
        XCTAssertEqual(steps.count, lines.count)
        XCTAssertEqual(steps.filter { $0 == 3 }.count, 0, "\(steps)")
        XCTAssertEqual(steps.filter { $0 == 2 }.count, 2, "one training and one evaluation line for step 2: \(steps)")
        // Pruning (keep 2) kept this run's iter_2.h5 next to the stale iter_3.h5.
        XCTAssertTrue(FileManager.default.fileExists(atPath: work + "/iter_2.h5"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: work + "/iter_3.h5"))
        // best.h5 was replaced only if the resumed history did better.
        let bestAfter = try Checkpoint.Reader(path: work + "/best.h5")
        XCTAssertGreaterThanOrEqual(bestAfter.extra("miou") ?? -1, best.extra("miou") ?? 2)
        if (bestAfter.extra("miou") ?? -1) == (best.extra("miou") ?? -2) {
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: work + "/best.h5")), bestBefore)
        }
    }

    func testStaleTemporariesOfDeadProcessesAreRemoved() throws {
        try FileManager.default.createDirectory(atPath: dir + "/tmp", withIntermediateDirectories: true)
        // PID 2^22 + 1 is above Linux's pid_max default: no such process.
        let stale = dir + "/tmp/iter_5.h5.tmp-4194305"
        let live = dir + "/tmp/iter_6.h5.tmp-\(getpid())"
        FileManager.default.createFile(atPath: stale, contents: Data([1]))
        FileManager.default.createFile(atPath: live, contents: Data([1]))
        XCTAssertEqual(try train("tmp", ["--set", "train.iters=1"]).0, 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: stale))
        XCTAssertTrue(FileManager.default.fileExists(atPath: live), "a live process's file is left alone")
    }

    /// A dinov2_vitt14 weights file (HDF5, official names) whose first LayerNorm is NaN:
    /// every step is non-finite.
    private func nanWeights() throws -> String {
        let arch = try BackboneArchitecture.named("dinov2_vitt14")
        let path = dir + "/nan.h5"
        let file = try HDF5File.create(path)
        var shapes = BackboneWeights.expectations(for: arch).shapes.filter { !$0.key.contains(".") || $0.key.hasPrefix("blocks.") || $0.key.hasPrefix("norm.") || $0.key.hasPrefix("patch_embed.") }
        shapes["pos_embed"] = [1, 5, arch.channels]
        shapes["patch_embed.proj.weight"] = [arch.channels, 3, 14, 14]
        for (name, shape) in shapes where !name.hasPrefix("backbone.") && !name.hasPrefix("module.") && !name.hasPrefix("teacher.") {
            let t = Tensor(zeros: shape)
            if name == "blocks.0.norm1.weight" { t.fill(.nan) }
            try file.write(t, to: name)
        }
        try file.close()
        return path
    }

    func testSkippedStepsStillCheckpointAndEvaluateAndAllSkippedFails() throws {
        let weights = try nanWeights()
        try config(weights: weights, iters: 2, extraTrain: ", skip_nonfinite: true").write(toFile: dir + "/nan.yaml", atomically: true, encoding: .utf8)
        let result = try train("nan", config: "nan.yaml")
        assertOneLineFailure(result, ["all 2 steps", "skipped"])
        for f in ["iter_1.h5", "iter_2.h5", "eval_iter_2.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/nan/" + f), "\(f) missing: \(result.1)")
        }
        XCTAssertEqual(try Checkpoint.Reader(path: dir + "/nan/iter_2.h5").extra("skipped"), 2)
        let log = try String(contentsOfFile: dir + "/nan/train.log", encoding: .utf8)
        XCTAssertTrue(log.contains("all 2 steps"), "the failure is in train.log too")
    }

    func testResumeRefusesAChangedBackbone() throws {
        let weights = try nanWeights()
        try config(weights: weights, iters: 1, extraTrain: ", skip_nonfinite: true").write(toFile: dir + "/w.yaml", atomically: true, encoding: .utf8)
        _ = try train("w", config: "w.yaml")   // fails (all skipped) but writes iter_1.h5
        let checkpoint = dir + "/w/iter_1.h5"
        XCTAssertTrue(FileManager.default.fileExists(atPath: checkpoint))
        // Same path, other content.
        let handle = try XCTUnwrap(FileHandle(forUpdatingAtPath: weights))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data([0]))
        try handle.close()
        assertOneLineFailure(try train("w2", ["--resume", checkpoint, "--set", "train.iters=2"], config: "w.yaml"),
                             ["SHA-256", "--allow-backbone-change"])
        // Random weights vs. the file the checkpoint was trained on.
        assertOneLineFailure(try train("w3", ["--resume", checkpoint, "--set", "train.iters=2"]), ["backbone weights"])
        let allowed = try train("w4", ["--resume", checkpoint, "--set", "train.iters=2", "--allow-backbone-change"], config: "w.yaml")
        XCTAssertTrue(allowed.1.contains("resuming anyway"), allowed.1)
    }

    func testDiskFullIsOneLineInTrainLogWithoutACrashOrPartialFile() throws {
        // RLIMIT_FSIZE with SIGXFSZ ignored: a write past 300 kB fails with EFBIG, as on a
        // full disk. The log and config fit; the first checkpoint (≈ 1 MB) does not.
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        p.arguments = ["-c", "trap '' XFSZ; ulimit -f 300; exec \"$0\" \"$@\"", CommandLineRunner.binary,
                       "train", "--config", dir + "/tiny.yaml", "--work-dir", dir + "/full"]
        p.environment = ChildProcess.environment()
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        try p.run()
        let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        assertOneLineFailure((p.terminationStatus, out), [dir + "/full/iter_1.h5"])
        XCTAssertEqual(p.terminationReason, .exit, out)
        let names = try FileManager.default.contentsOfDirectory(atPath: dir + "/full")
        XCTAssertFalse(names.contains { $0.contains(".tmp-") }, "\(names)")
        XCTAssertFalse(names.contains("iter_1.h5"), "no partial file under the real name: \(names)")
        let log = try String(contentsOfFile: dir + "/full/train.log", encoding: .utf8)
        XCTAssertTrue(log.split(separator: "\n").last?.contains("causal-tune:") ?? false, log)
    }

    func testMissingExplicitSyntheticRootIsAnError() throws {
        let yaml = config().replacingOccurrences(of: "train: {dataset: folder, root: \(dir)/data, split: train}",
                                                 with: "train: {dataset: synthetic, root: \(dir)/typo-root, split: train}")
        try yaml.write(toFile: dir + "/typo.yaml", atomically: true, encoding: .utf8)
        assertOneLineFailure(try train("typo", config: "typo.yaml"), [dir + "/typo-root", "causal-tune synth --out"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/typo-root"))
    }

    func testBadInputsAreRefusedBeforeTheFirstStep() throws {
        // dump_features images are checked up front, not at the first dump.
        assertOneLineFailure(try train("dump", ["--set", "output.dump_features={every: 2, images: [\(dir)/missing.png]}"]),
                             ["output.dump_features.images", dir + "/missing.png"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/dump/iter_1.h5"))
        assertOneLineFailure(try train("dump2", ["--set", "output.dump_features={every: 2, images: [\(dir)/data/images/img0.png], layers: [40]}"]),
                             ["output.dump_features.layers", "40"])
        // A LoRA rank above the embed dim (192 for dinov2_vitt14).
        assertOneLineFailure(try train("lora", ["--set", "model.peft.lora_rank=500"]), ["model.peft.lora_rank", "192"])
        // An empty --set value.
        assertOneLineFailure(try train("empty", ["--set", "train="]), ["empty value"])
        // bench --steps 0.
        let bench = try CommandLineRunner.run(["bench", "--config", dir + "/tiny.yaml", "--steps", "0"])
        XCTAssertNotEqual(bench.status, 0, bench.output)
        XCTAssertTrue(bench.output.contains("--steps"), bench.output)
    }
}
