import ChildProcesses
import Foundation
import Numerics
import Training
import XCTest

/// Files that crash Debian's libhdf5 1.10.8 (found by `launch/fuzz`, kept in
/// Fixtures/hdf5_crash/) never crash the CLI: every command that opens a user's HDF5 file
/// reads it first in a child (`causal-tune check-hdf5`, `HDF5Preflight`) and turns the
/// child's death into one line and exit status 1 — alone and under mpirun.
final class HDF5PreflightTests: XCTestCase {
    private var dir = ""
    private static let fixtures = ChildProcess.packageRoot + "/Tests/TrainingTests/Fixtures/hdf5_crash"
    /// A NULL dereference in H5A__close, reached from H5Aget_name_by_idx (a corrupt attribute table).
    private static let attributeTable = fixtures + "/attribute_table_null_deref.h5"
    /// A bad memcpy in H5HG_read reading a variable-length string attribute: crashes the
    /// checkpoint reader itself (`format`, by name).
    private static let crashing = fixtures + "/vlen_string_heap_crash.h5"
    /// An endless loop in the same global-heap read.
    private static let hanging = fixtures + "/vlen_string_heap_hang.h5"

    override func setUpWithError() throws {
        try CommandLineRunner.requireBinary()
        dir = NSTemporaryDirectory() + "ct-preflight-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir + "/data/images", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: dir + "/data/labels", withIntermediateDirectories: true)
        try """
        model:
          backbone: {arch: dinov2_vitt14, weights: random, image_size: 28, patch_size: 14}
          peft: {method: causal_tune, tokens: 4}
          head: {type: linear, num_classes: 19}
        data:
          train: {dataset: folder, root: \(dir)/data, split: train}
          val: [{dataset: folder, root: \(dir)/data, split: val, name: tiny}]
          crop_size: 28
          augment: none
        train: {seed: 1, iters: 2, batch_size: 2, lr: 0.001, log_every: 1, eval_every: 1, checkpoint_every: 1}
        """.write(toFile: dir + "/tiny.yaml", atomically: true, encoding: .utf8)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    /// Runs `causal-tune args` with `environment` added; the exit status, whether a signal
    /// ended it, and stdout + stderr.
    private func run(_ args: [String], ranks: Int = 1, environment: [String: String] = [:],
                     timeout: TimeInterval = 120) throws -> (status: Int32, signalled: Bool, output: String) {
        let p = try CommandLineRunner.process(args, ranks: ranks)
        var env = p.environment ?? [:]
        for (k, v) in environment { env[k] = v }
        env["SWIFT_BACKTRACE"] = "enable=no"
        p.environment = env
        if ranks > 1, var a = p.arguments {
            for k in environment.keys.sorted() { a.insert(contentsOf: ["-x", k], at: 0) }
            p.arguments = a
        }
        let out = dir + "/out-\(UUID().uuidString).txt"
        FileManager.default.createFile(atPath: out, contents: nil)
        let handle = try XCTUnwrap(FileHandle(forWritingAtPath: out))
        p.standardOutput = handle
        p.standardError = handle
        try p.run()
        let end = Date().addingTimeInterval(timeout)
        while p.isRunning && Date() < end { usleep(20_000) }
        if p.isRunning {
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            XCTFail("causal-tune \(args.joined(separator: " ")) did not finish within \(Int(timeout)) s")
        }
        p.waitUntilExit()
        try handle.close()
        let text = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
        return (p.terminationStatus, p.terminationReason == .uncaughtSignal, text)
    }

    private func assertRefused(_ r: (status: Int32, signalled: Bool, output: String), _ fragments: [String],
                               file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertFalse(r.signalled, "killed by signal \(r.status): \(r.output)", file: file, line: line)
        XCTAssertEqual(r.status, 1, r.output, file: file, line: line)
        let lines = r.output.split(separator: "\n").filter { $0.contains("the HDF5 library") }
        XCTAssertEqual(lines.count, 1, r.output, file: file, line: line)
        for f in fragments { XCTAssertTrue(r.output.contains(f), "'\(f)' not in: \(r.output)", file: file, line: line) }
        XCTAssertFalse(r.output.contains("Fatal error") || r.output.contains("Segmentation") || r.output.contains("Stack dump")
                       || r.output.contains("Crash"), r.output, file: file, line: line)
    }

    /// The fixtures really crash the library: without the check the CLI dies of the signal.
    func testFixturesCrashTheLibraryWithoutTheCheck() throws {
        let off = ["CAUSAL_TUNE_HDF5_PREFLIGHT": "0"]
        let a = try run(["inspect", Self.attributeTable], environment: off)
        XCTAssertTrue(a.signalled, "expected a crash inside libhdf5, got status \(a.status): \(a.output)")
        let b = try run(["export", "--checkpoint", Self.crashing, "--format", "safetensors", "--out", dir + "/x.safetensors"],
                        environment: off)
        XCTAssertTrue(b.signalled, "expected a crash inside libhdf5, got status \(b.status): \(b.output)")
    }

    func testInspectEvaluateResumeInitExportRefuseTheFileInOneLine() throws {
        let config = dir + "/tiny.yaml"
        let crashed = "the HDF5 library crashed reading it (signal"
        assertRefused(try run(["inspect", Self.attributeTable]), ["HDF5 file \(Self.attributeTable): " + crashed])
        assertRefused(try run(["inspect", Self.crashing]), ["HDF5 file \(Self.crashing): " + crashed])
        assertRefused(try run(["evaluate", "--config", config, "--checkpoint", Self.crashing, "--work-dir", dir + "/w"]),
                      ["causal-tune: checkpoint \(Self.crashing): " + crashed, "the file is damaged; use an earlier checkpoint"])
        assertRefused(try run(["train", "--config", config, "--work-dir", dir + "/w", "--resume", Self.crashing]),
                      ["checkpoint \(Self.crashing): " + crashed])
        assertRefused(try run(["train", "--config", config, "--work-dir", dir + "/w", "--init", Self.crashing]),
                      ["checkpoint \(Self.crashing): " + crashed])
        assertRefused(try run(["export", "--checkpoint", Self.crashing, "--format", "safetensors", "--out", dir + "/x.safetensors"]),
                      ["checkpoint \(Self.crashing): " + crashed])
        assertRefused(try run(["visualize", "bands", Self.attributeTable, "--out", dir + "/b.png"]),
                      ["feature dump \(Self.attributeTable): " + crashed])
        // The same file as HDF5 backbone weights.
        assertRefused(try run(["train", "--config", config, "--work-dir", dir + "/w",
                               "--set", "model.backbone.weights=\(Self.crashing)"]),
                      ["weights file \(Self.crashing): " + crashed, "re-download or re-convert the weights"])
        // A damaged best.h5 in the work directory (read to keep the best model) is named too.
        try FileManager.default.createDirectory(atPath: dir + "/w2", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: Self.crashing, toPath: dir + "/w2/best.h5")
        assertRefused(try run(["train", "--config", config, "--work-dir", dir + "/w2"]),
                      ["checkpoint \(dir)/w2/best.h5: " + crashed, "move it out of the work directory"])
    }

    func testUnderMPIRankZeroChecksAndTheJobStopsWithOneLine() throws {
        let r = try run(["evaluate", "--config", dir + "/tiny.yaml", "--checkpoint", Self.crashing, "--work-dir", dir + "/w"],
                        ranks: 2)
        XCTAssertNotEqual(r.status, 0, r.output)
        XCTAssertFalse(r.signalled, r.output)
        let lines = r.output.split(separator: "\n").filter { $0.contains("the HDF5 library crashed") }
        XCTAssertEqual(lines.count, 1, r.output)
        XCTAssertTrue(lines.first?.hasPrefix("causal-tune (rank 0): checkpoint \(Self.crashing)") ?? false, r.output)
        XCTAssertFalse(r.output.contains("Segmentation") || r.output.contains("signal 11 (Segmentation"), r.output)
    }

    /// A file on which the library never returns: the child is stopped at its deadline.
    func testAHangIsStoppedAtTheDeadline() throws {
        let quick = ["CAUSAL_TUNE_HDF5_PREFLIGHT_TIMEOUT": "2"]
        let start = Date()
        assertRefused(try run(["evaluate", "--config", dir + "/tiny.yaml", "--checkpoint", Self.hanging, "--work-dir", dir + "/w"],
                              environment: quick, timeout: 60),
                      ["checkpoint \(Self.hanging): the HDF5 library did not finish reading it within 2 s (stopped) — the file is damaged"])
        XCTAssertLessThan(Date().timeIntervalSince(start), 30)
    }

    /// A good checkpoint passes the check; our own checks then report what they find.
    func testAGoodCheckpointPassesTheCheck() throws {
        let config = dir + "/tiny.yaml"
        let ckpt = dir + "/good.h5"
        let set = ParameterSet([(name: "peft/scale", value: Tensor(zeros: [1]), grad: Tensor(zeros: [1]))])
        try Checkpoint.write(to: ckpt, metadata: .init(step: 3, worldSize: 1, config: "", rngState: [1, 2, 3, 4],
                                                       optimizer: "adamw", backboneWeights: "random", backboneSHA256: "",
                                                       signature: nil),
                             parameters: set, optimizer: nil)
        let good = try run(["inspect", ckpt])
        XCTAssertEqual(good.status, 0, good.output)
        XCTAssertTrue(good.output.contains("causal-tune-checkpoint"), good.output)
        // Our own checks still give their usual message after the child passed the file.
        let foreign = try run(["evaluate", "--config", config, "--checkpoint", ckpt, "--work-dir", dir + "/w"])
        XCTAssertEqual(foreign.status, 1, foreign.output)
        XCTAssertFalse(foreign.output.contains("the HDF5 library"), foreign.output)
        XCTAssertTrue(foreign.output.contains("is missing (checkpoint written for another model?)"), foreign.output)
    }
}
