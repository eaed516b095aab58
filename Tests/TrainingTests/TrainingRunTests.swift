import ChildProcesses
import Foundation
import HDF5
import ImageIO
import Numerics
import Training
import XCTest

/// End-to-end runs of `.build/release/causal-tune train` (built by `launch/test`): a tiny
/// random ViT on a 4-image `folder` dataset, single process and under `mpirun -np 2`.
final class TrainingRunTests: XCTestCase {
    private var dir = ""

    override func setUpWithError() throws {
        try CommandLineRunner.requireBinary()
        dir = NSTemporaryDirectory() + "ct-train-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir + "/data/images", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: dir + "/data/labels", withIntermediateDirectories: true)
        // Four 36×36 images with blocky labels (a few classes and an ignored band).
        var rng = RandomGenerator(seed: 7)
        for i in 0..<4 {
            var img = RGBImage(width: 36, height: 36)
            var lab = LabelMap(width: 36, height: 36)
            for y in 0..<36 { for x in 0..<36 {
                let cls = (y < 12 ? 10 : (x < 18 ? 0 : 13))
                lab.labels[y * 36 + x] = y == 20 ? 255 : UInt8((cls + i) % 19)
                for c in 0..<3 {
                    img.pixels[(y * 36 + x) * 3 + c] = UInt8(clamping: 40 + cls * 9 + c * 30 + rng.integer(below: 40))
                }
            } }
            try ImageIO.writePNG(img, to: dir + "/data/images/img\(i).png")
            try ImageIO.writePNG(lab, to: dir + "/data/labels/img\(i).png")
        }
        let config = """
        model:
          backbone: {arch: dinov2_vitt14, weights: random, image_size: 28, patch_size: 14}
          peft: {method: causal_tune, tokens: 8}
          head: {type: linear, num_classes: 19}
        data:
          train: {dataset: folder, root: \(dir)/data, split: train}
          val: [{dataset: folder, root: \(dir)/data, split: val, name: tiny}]
          crop_size: 28
          augment: none
        train: {seed: 3, iters: 3, batch_size: 4, lr: 0.001, log_every: 1, eval_every: 0, checkpoint_every: 1, keep: 0}
        """
        try config.write(toFile: dir + "/tiny.yaml", atomically: true, encoding: .utf8)
        // The same with the mask2former head (≈ 20 M head values: 240 MB checkpoints, so no
        // evaluation, no best.h5, and a checkpoint only at the end).
        let m2f = config.replacingOccurrences(of: "head: {type: linear, num_classes: 19}",
                                              with: "head: {type: mask2former, out_indices: [2, 5, 8, 11], num_classes: 19}")
            .replacingOccurrences(of: "val: [{dataset: folder, root: \(dir)/data, split: val, name: tiny}]", with: "val: []")
            .replacingOccurrences(of: "checkpoint_every: 1", with: "checkpoint_every: 0")
        try m2f.write(toFile: dir + "/tiny-m2f.yaml", atomically: true, encoding: .utf8)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    /// Runs the CLI (optionally under mpirun -np `ranks`); returns (status, output).
    @discardableResult
    private func run(_ args: [String], ranks: Int = 1) throws -> (Int32, String) {
        try CommandLineRunner.run(args, ranks: ranks)
    }

    private func train(_ work: String, ranks: Int = 1, config: String = "tiny.yaml", extra: [String] = [],
                       expectSuccess: Bool = true) throws -> String {
        let (status, out) = try run(["train", "--config", dir + "/" + config, "--work-dir", dir + "/" + work] + extra, ranks: ranks)
        if expectSuccess { XCTAssertEqual(status, 0, out) } else { XCTAssertNotEqual(status, 0, out) }
        return out
    }

    private func params(_ path: String) throws -> [String: [Float]] {
        let f = try HDF5File.open(path)
        var out: [String: [Float]] = [:]
        for p in try f.datasetPaths(under: "params") { out[p] = try f.readTensor(p).array }
        return out
    }

    private func maxRelativeDifference(_ a: [String: [Float]], _ b: [String: [Float]]) -> Double {
        XCTAssertEqual(Set(a.keys), Set(b.keys))
        var worst = 0.0
        for (k, x) in a {
            guard let y = b[k] else { continue }
            let scale = max(1e-3, Double(x.map { abs($0) }.max() ?? 0))
            for (u, v) in zip(x, y) { worst = max(worst, Double(abs(u - v)) / scale) }
        }
        return worst
    }

    /// 3 steps with total batch 4 on 2 ranks = 3 steps in one process, bit for bit (augment none).
    func testTwoRanksMatchOneProcess() throws {
        _ = try train("single")
        _ = try train("mpi", ranks: 2)
        let a = try params(dir + "/single/iter_3.h5")
        XCTAssertEqual(try CheckpointComparison.differingDatasets(dir + "/single/iter_3.h5", dir + "/mpi/iter_3.h5"), [])
        // The run trained something.
        let a0 = try params(dir + "/single/iter_1.h5")
        XCTAssertGreaterThan(maxRelativeDifference(a0, a), 1e-6)
        // metrics.jsonl has the split of the step time.
        let metrics = try String(contentsOfFile: dir + "/single/metrics.jsonl", encoding: .utf8)
        XCTAssertTrue(metrics.contains("\"allreduce\""), metrics)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/single/config.yaml"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/single/best.h5"))
    }

    /// EVA02 and CLIP go through everything DINOv2 does: training with Causal-Tune (and Rein
    /// with the Mask2Former head for EVA02), checkpoints that record the backbone,
    /// evaluation, `features` with the trained adapter and `inspect`.
    func testEVA02AndCLIPBackbonesTrainEvaluateAndDumpFeatures() throws {
        for arch in ["eva02_vitt14", "clip_vitb16"] {
            let work = dir + "/" + arch
            let out = try train(arch, extra: ["--set", "model.backbone.arch=\(arch)", "model.backbone.patch_size=14",
                                              "train.iters=2", "train.eval_every=2"])
            XCTAssertTrue(out.contains("mIoU") || out.contains("miou"), out)
            let checkpoint = work + "/iter_2.h5"
            XCTAssertTrue(FileManager.default.fileExists(atPath: checkpoint), out)
            let (s1, o1) = try run(["features", "--config", work + "/config.yaml", "--checkpoint", checkpoint,
                                    "--out", work + "/f.h5", dir + "/data/images/img0.png"])
            XCTAssertEqual(s1, 0, o1)
            let dump = try HDF5File.open(work + "/f.h5")
            XCTAssertEqual(try dump.readTensor("layer_11/refined").shape, [1, arch.hasPrefix("eva02") ? 192 : 768, 2, 2])
            try dump.close()
            let (s2, o2) = try run(["inspect", checkpoint])
            XCTAssertEqual(s2, 0, o2)
            XCTAssertTrue(o2.contains(arch), o2)
        }
        // Rein tokens and the Mask2Former head on EVA02.
        _ = try train("eva02-m2f", config: "tiny-m2f.yaml",
                      extra: ["--set", "model.backbone.arch=eva02_vitt14", "model.peft.method=rein", "train.iters=1"])
    }

    func testBatchNotDivisibleByRanksIsOneClearError() throws {
        let out = try train("bad", ranks: 3, extra: ["--set", "train.batch_size=4"], expectSuccess: false)
        XCTAssertTrue(out.contains("train.batch_size"), out)
    }

    func testForeignCheckpointIsRefused() throws {
        _ = try train("a", extra: ["--set", "train.iters=1"])
        let out = try train("b", extra: ["--set", "model.head.out_indices=[11]", "--init", dir + "/a/iter_1.h5"],
                            expectSuccess: false)
        XCTAssertTrue(out.contains("model.head.out_indices"), out)
    }

    /// kill -9 of one rank mid-run: every checkpoint left is complete, and --resume goes on.
    func testKilledRankLeavesLastCheckpointIntact() throws {
        let work = dir + "/killed"
        let p = try CommandLineRunner.process(["train", "--config", dir + "/tiny.yaml", "--work-dir", work,
                                           "--set", "train.iters=100000", "train.keep=2", "data.val=[]"], ranks: 2)
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        defer { if p.isRunning { p.terminate() } }
        // Wait for a few checkpoints, then kill -9 a rank (a child of mpirun).
        let deadline = Date().addingTimeInterval(90)
        while Trainer.iterationCheckpoints(in: work).last.map({ $0.step < 3 }) ?? true {
            guard Date() < deadline, p.isRunning else { return XCTFail("no checkpoints appeared") }
            usleep(100_000)
        }
        let pgrep = try ChildProcess.run(try ChildProcess.tool("pgrep", package: "procps"), ["-P", "\(p.processIdentifier)"],
                                         timeout: 30, includeStandardError: false)
        let children = pgrep.output.split(separator: "\n").compactMap { Int32($0) }
        guard let victim = children.last else { return XCTFail("no rank processes found") }
        kill(victim, SIGKILL)
        let ended = Date().addingTimeInterval(60)
        while p.isRunning && Date() < ended { usleep(100_000) }
        XCTAssertFalse(p.isRunning, "mpirun still runs 60 s after a rank was killed")
        p.waitUntilExit()
        XCTAssertNotEqual(p.terminationStatus, 0)
        // Every checkpoint under a real name is complete; the newest resumes.
        let checkpoints = Trainer.iterationCheckpoints(in: work)
        XCTAssertFalse(checkpoints.isEmpty)
        for c in checkpoints { XCTAssertNoThrow(try params(c.path), c.path) }
        let last = try XCTUnwrap(checkpoints.last)
        _ = try train("killed-resumed", extra: ["--resume", last.path, "--set", "train.iters=\(last.step + 1)"])
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/killed-resumed/iter_\(last.step + 1).h5"))
    }
}
