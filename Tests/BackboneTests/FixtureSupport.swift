import Backbone
import Core
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

extension Fixtures {
    /// The parity measure's bound: max |ours − PyTorch| / max |PyTorch| per block.
    static let parityTolerance: Float = 1e-4

    /// Loads `weights` (any format and naming) into `arch` at the reference's image and patch
    /// size, runs the reference input and checks every block's tokens against `block_<i>`
    /// (and that the file was read as `arch`'s family).
    @discardableResult
    static func assertParity(_ weights: String, _ reference: String, _ arch: BackboneArchitecture, recompute: Bool = false,
                             interpolation: VisionTransformer.PositionInterpolation = .converter,
                             file: StaticString = #filePath, line: UInt = #line) throws -> (VisionTransformer, WeightFile) {
        let ref = try Fixtures.reference(reference)
        let image = Int(ref.metadata["image_size"]!)!, patch = Int(ref.metadata["patch_size"]!)!
        let model = VisionTransformer(architecture: arch, imageSize: image, patchSize: patch, recompute: recompute)
        let loaded = try BackboneWeights.read(Fixtures.path(weights))
        XCTAssertEqual(loaded.family, arch.family, "\(weights): family", file: file, line: line)
        try model.load(loaded, positionInterpolation: interpolation)
        model.forward(ref.tensors["input"]!)
        for i in 0..<arch.depth {
            let expected = ref.tensors["block_\(i)"]!
            XCTAssertEqual(model.output(ofBlock: i).shape, expected.shape, file: file, line: line)
            let err = relativeError(model.output(ofBlock: i), expected)
            XCTAssertLessThan(err, parityTolerance, "\(weights) vs ref_\(reference) block \(i): relative error \(err)",
                              file: file, line: line)
        }
        return (model, ref)
    }

    /// In store and recompute mode: the frozen backward of the reference's `dout_<i>` gives
    /// its `dtokens` (∂L/∂x₀ from autograd).
    static func assertFrozenBackward(_ weights: String, _ reference: String, _ arch: BackboneArchitecture,
                                     file: StaticString = #filePath, line: UInt = #line) throws {
        for recompute in [false, true] {
            let (model, ref) = try assertParity(weights, reference, arch, recompute: recompute, file: file, line: line)
            var grads: [Int: Tensor] = [:]
            for i in 0..<arch.depth { grads[i] = ref.tensors["dout_\(i)"]! }
            let err = relativeError(model.backward(outputGradients: grads), ref.tensors["dtokens"]!)
            XCTAssertLessThan(err, parityTolerance, "\(weights) recompute=\(recompute): dL/dx0 relative error \(err)",
                              file: file, line: line)
        }
    }
}
