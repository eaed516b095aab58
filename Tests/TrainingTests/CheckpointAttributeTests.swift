import Core
import Foundation
import HDF5
import Numerics
import Training
import XCTest

/// A checkpoint's root attributes are checked on open: a present attribute with the wrong
/// type or range is one line naming the file and the attribute, never a default.
final class CheckpointAttributeTests: XCTestCase {
    private var dir = ""

    override func setUp() {
        dir = NSTemporaryDirectory() + "ct-ckpt-attr-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    private func writeCheckpoint(_ name: String, step: Int = 7) throws -> String {
        let v = Tensor(shape: [2], values: [1, 2])
        let set = ParameterSet([(name: "peft/scale", value: v, grad: Tensor(zeros: [2]))])
        let path = dir + "/" + name
        try Checkpoint.write(to: path, metadata: Checkpoint.Metadata(step: step, worldSize: 1, config: "", rngState: [1, 2, 3, 4],
                                                                     optimizer: "adamw", backboneWeights: "random",
                                                                     backboneSHA256: "", signature: nil,
                                                                     extra: ["best_miou": 0.5, "best_step": 4]),
                             parameters: set, optimizer: Optimizer(.adamw, parameters: set))
        return path
    }

    private func tamper(_ path: String, _ name: String, _ value: HDF5Attribute) throws {
        let file = try HDF5File(path: path, mode: .readWrite)
        try file.setAttribute(name, value)
        try file.close()
    }

    func testValidCheckpointOpens() throws {
        let path = try writeCheckpoint("ok.h5")
        let reader = try Checkpoint.Reader(path: path)
        XCTAssertEqual(reader.metadata.step, 7)
        XCTAssertEqual(reader.extra("best_step"), 4)
    }

    func testBadAttributesAreOneLineEach() throws {
        let cases: [(String, HDF5Attribute, String)] = [
            ("step", .int64(-5), "'step'"),
            ("step", .string("12"), "'step'"),
            ("rng_state", .uint64s([1, 2]), "'rng_state'"),
            ("rng_state", .string("x"), "'rng_state'"),
            ("world_size", .int64(0), "'world_size'"),
            ("optimizer_steps", .int64(9), "'optimizer_steps'"),
            ("best_miou", .float64(.nan), "'best_miou'"),
            ("config", .int64(3), "'config'"),
        ]
        for (i, (name, value, fragment)) in cases.enumerated() {
            let path = try writeCheckpoint("bad\(i).h5")
            try tamper(path, name, value)
            XCTAssertThrowsError(try Checkpoint.Reader(path: path), "\(name) = \(value)") { error in
                let msg = (error as? CausalTuneError)?.message ?? "\(error)"
                XCTAssertTrue(msg.contains(path) && msg.contains(fragment), msg)
                XCTAssertFalse(msg.contains("\n"), msg)
            }
        }
    }
}
