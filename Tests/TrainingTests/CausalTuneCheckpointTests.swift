import Foundation
import PEFT
import Training
import XCTest

/// Loading `/params` from a reference §Files checkpoint written by h5py.
final class CausalTuneCheckpointTests: XCTestCase {
    private let tests = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()

    func testLoadsPEFTParametersFromASpecCheckpoint() throws {
        let path = tests.appendingPathComponent("PEFTTests/Fixtures/features_dct_checkpoint.h5").path
        let a = try CausalTuneAdapter(options: CausalTuneOptions(tokens: 10), layers: 2, channels: 16, patchSize: 14, seed: 0)
        try a.loadCheckpoint(path)
        XCTAssertEqual(a.scale.value.array, [0.5])
        XCTAssertEqual(a.tokens!.value.shape, [2, 10, 16])
        XCTAssertTrue(a.tokens!.value.array.allSatisfy { abs($0) <= 1 })
        // A layer set of another shape is refused with the file and the parameter named.
        let wrong = try CausalTuneAdapter(options: CausalTuneOptions(tokens: 7), layers: 2, channels: 16, patchSize: 14, seed: 0)
        XCTAssertThrowsError(try wrong.loadCheckpoint(path)) { e in
            XCTAssertTrue("\(e)".contains("features_dct_checkpoint.h5") && "\(e)".contains("peft/tokens"), "\(e)")
        }
        let lowRank = try CausalTuneAdapter(options: CausalTuneOptions(tokens: 10, loraRank: 2), layers: 2, channels: 16, patchSize: 14, seed: 0)
        XCTAssertThrowsError(try lowRank.loadCheckpoint(path)) { e in
            XCTAssertTrue("\(e)".contains("missing parameter peft/tokens_a"), "\(e)")
        }
    }
}
