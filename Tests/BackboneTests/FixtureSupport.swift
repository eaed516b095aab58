import Backbone
import Foundation
import Numerics
import XCTest

/// Paths of the committed fixtures (see Fixtures/make_fixtures.py) and comparison helpers.
enum Fixtures {
    static let directory = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!

    static func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    /// The tiny architectures of the fixtures (C = 16, 2 heads).
    static let s14 = BackboneArchitecture(name: "tiny_s14", channels: 16, depth: 2, heads: 2,
                                        feedForward: .mlp(hidden: 64), registers: 0)
    static let s14reg4 = BackboneArchitecture(name: "tiny_s14_reg4", channels: 16, depth: 2, heads: 2,
                                            feedForward: .mlp(hidden: 64), registers: 4)
    static let g14 = BackboneArchitecture(name: "tiny_g14", channels: 16, depth: 1, heads: 2,
                                        feedForward: .swiglu(hidden: 48), registers: 0)

    /// A reference file `ref_<name>.safetensors`.
    static func reference(_ name: String) throws -> WeightFile {
        try SafeTensors.read(path("ref_\(name).safetensors"))
    }

    /// Writes `bytes` to a fresh temporary file and returns its path.
    static func temporaryFile(_ bytes: [UInt8], name: String) -> String {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("backbone-tests-\(ProcessInfo.processInfo.processIdentifier)-\(name)")
        _ = FileManager.default.createFile(atPath: url.path, contents: Data(bytes))
        return url.path
    }
}

/// max |a − b| / max |b| (the parity measure of the issue).
func relativeError(_ a: Tensor, _ b: Tensor) -> Float {
    precondition(a.count == b.count, "relativeError: \(a.shape) vs \(b.shape)")
    var diff: Float = 0, scale: Float = 0
    for i in 0..<a.count {
        diff = max(diff, abs(a.data[i] - b.data[i]))
        scale = max(scale, abs(b.data[i]))
    }
    return diff / max(scale, 1e-30)
}

/// Asserts that `body` throws a CausalTuneError whose one-line message contains every fragment.
func assertCausalTuneError(_ fragments: [String], file: StaticString = #filePath, line: UInt = #line,
                           _ body: () throws -> Void) {
    do {
        try body()
        XCTFail("expected a CausalTuneError containing \(fragments)", file: file, line: line)
    } catch let error as CausalTuneError {
        XCTAssertFalse(error.message.contains("\n"), "message spans lines: \(error.message)", file: file, line: line)
        for f in fragments {
            XCTAssertTrue(error.message.contains(f), "'\(error.message)' lacks '\(f)'", file: file, line: line)
        }
    } catch {
        XCTFail("expected a CausalTuneError, got \(error)", file: file, line: line)
    }
}
